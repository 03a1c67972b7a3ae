package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/client"
)

// The monitor's text output names each alarm (with its entry and evidence
// when it has one), the owner's notice with its deadline, and how far
// behind the directory's checkpoint was; "OK" only when there is neither
// an alarm nor a notice. --json carries the same.
func TestPrintMonitor(t *testing.T) {
	until := time.Date(2026, 12, 10, 9, 30, 0, 0, time.UTC)
	rep := &client.Report{Origin: "blindex.example/log", Size: 40, Scanned: 12, Mine: 3, Behind: 7, NoticeUntil: &until,
		Alarms: []client.Alarm{
			{Kind: client.AlarmHolder, Index: 31, Message: "key 3f2a joined", Evidence: []string{"blindex-log/v1 holder\nevent join\n"}},
			{Kind: client.AlarmRetired, Message: "the directory refuses your credential"},
		}}
	var out bytes.Buffer
	printMonitor(&out, rep)
	for _, want := range []string{
		"log blindex.example/log: 40 entries, 12 new, 3 under your label\n",
		"ALARM holder (entry 31): key 3f2a joined\n  | blindex-log/v1 holder\n  | event join\n",
		"ALARM retired: the directory refuses your credential\n",
		"prove the number again by " + until.Local().Format(time.DateTime),
		"behind: the directory holds at least 7 entries past its latest checkpoint",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "OK") {
		t.Errorf("output with alarms says OK:\n%s", out.String())
	}

	// A notice alone is not OK either; a clean run that was not behind
	// says nothing of it.
	out.Reset()
	printMonitor(&out, &client.Report{Origin: "o", NoticeUntil: &until})
	if !strings.Contains(out.String(), "NOTICE") || strings.Contains(out.String(), "OK") {
		t.Errorf("a notice alone:\n%s", out.String())
	}
	out.Reset()
	printMonitor(&out, &client.Report{Origin: "o"})
	if !strings.Contains(out.String(), "OK: ") || strings.Contains(out.String(), "behind") {
		t.Errorf("a clean run:\n%s", out.String())
	}

	out.Reset()
	if err := printJSON(&out, rep); err != nil {
		t.Fatal(err)
	}
	var j struct {
		Behind      int64      `json:"behind"`
		NoticeUntil *time.Time `json:"notice_until"`
		Alarms      []struct {
			Kind     string   `json:"kind"`
			Index    int64    `json:"index"`
			Evidence []string `json:"evidence"`
		} `json:"alarms"`
	}
	if err := json.Unmarshal(out.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	if j.Behind != 7 || j.NoticeUntil == nil || !j.NoticeUntil.Equal(until) || len(j.Alarms) != 2 ||
		j.Alarms[0].Kind != "holder" || j.Alarms[0].Index != 31 || len(j.Alarms[0].Evidence) != 1 {
		t.Errorf("--json: %+v\n%s", j, out.String())
	}
}
