package synth

import "fmt"

// npas are the US geographic area codes for which libphonenumber (the
// metadata pinned in go.mod) accepts every subscriber number NXX-XXXX with
// N in 2..9. TestNumbersValid checks that it still does.
var npas = [...]uint16{
	201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 220, 223, 224,
	225, 227, 228, 229, 231, 234, 235, 239, 240, 248, 251, 252, 253, 254, 256, 260, 262, 267, 269, 270,
	272, 276, 279, 281, 283, 301, 302, 303, 304, 305, 307, 308, 309, 310, 312, 313, 314, 315, 316, 317,
	318, 319, 320, 321, 323, 324, 325, 326, 327, 329, 330, 331, 332, 334, 336, 337, 339, 341, 346, 347,
	350, 351, 352, 353, 360, 361, 363, 364, 369, 380, 385, 386, 401, 402, 404, 405, 406, 407, 408, 409,
	410, 412, 413, 414, 415, 417, 419, 423, 424, 425, 430, 432, 434, 435, 440, 442, 443, 445, 447, 448,
	458, 463, 464, 469, 470, 475, 478, 479, 480, 484, 501, 502, 503, 504, 505, 507, 508, 509, 510, 512,
	513, 515, 516, 517, 518, 520, 530, 531, 534, 539, 540, 541, 551, 557, 559, 561, 562, 563, 564, 567,
	570, 571, 572, 573, 574, 575, 580, 582, 585, 586, 601, 602, 603, 605, 606, 607, 608, 609, 610, 612,
	614, 615, 616, 617, 618, 619, 620, 623, 626, 628, 629, 630, 631, 636, 640, 641, 645, 646, 650, 651,
	656, 657, 659, 660, 661, 662, 667, 669, 678, 680, 681, 682, 686, 689, 701, 702, 703, 704, 706, 707,
	708, 712, 713, 714, 715, 716, 717, 718, 719, 720, 724, 725, 726, 727, 728, 730, 731, 732, 734, 737,
	738, 740, 743, 747, 748, 754, 757, 760, 762, 763, 765, 769, 770, 771, 772, 773, 774, 775, 779, 781,
	785, 786, 801, 802, 803, 804, 805, 806, 808, 810, 812, 813, 814, 815, 816, 817, 818, 820, 821, 826,
	828, 830, 831, 832, 835, 838, 839, 840, 843, 845, 847, 848, 850, 854, 856, 857, 858, 859, 860, 862,
	863, 864, 865, 870, 872, 878, 901, 903, 904, 906, 907, 908, 909, 910, 912, 913, 914, 915, 916, 917,
	918, 919, 920, 925, 928, 929, 930, 931, 934, 936, 937, 938, 940, 941, 943, 945, 947, 948, 949, 951,
	952, 954, 956, 959, 970, 971, 972, 973, 975, 978, 979, 980, 984, 985, 986, 989,
}

// perNPA is the count of subscriber numbers NXX-XXXX with N in 2..9.
const perNPA = 8_000_000

// Capacity is how many distinct numbers one seed yields: Number(seed, i)
// for i in [0, Capacity) are all different.
const Capacity = int(capacity)

const capacity = uint64(len(npas)) * perNPA

// Number returns the i-th synthetic number of seed in E.164 form, a valid
// US geographic number such as "+14155550100". For a given seed, distinct i
// in [0, Capacity) give distinct numbers; the sequence is the same on every
// machine. It panics if i is out of range.
//
// The numbers are drawn from real numbering-plan ranges, so some belong to
// real people: a synthetic directory holds only their OPRF-derived indexes,
// never the numbers, but do not send them anywhere.
func Number(seed uint64, i int) string {
	if i < 0 || i >= Capacity {
		panic(fmt.Sprintf("synth: number %d out of range [0, %d)", i, Capacity))
	}
	a, b := affine(seed)
	v := (a*uint64(i) + b) % capacity
	npa, rest := v/perNPA, v%perNPA
	return fmt.Sprintf("+1%03d%07d", npas[npa], 2_000_000+rest)
}

// affine returns the multiplier and offset of seed's permutation of
// [0, Capacity): i -> (a·i + b) mod Capacity, a bijection because a is
// coprime with Capacity. Both are below 2^32, so a·i does not overflow.
func affine(seed uint64) (a, b uint64) {
	a = splitmix(seed^0x6e756d62657273)%capacity | 1
	for gcd(a, capacity) != 1 {
		a += 2
	}
	return a, splitmix(seed+0x9e3779b97f4a7c15) % capacity
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// splitmix is SplitMix64's output function: a fast, well-mixed 64-bit hash.
// It shapes synthetic data only; nothing secret depends on it.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
