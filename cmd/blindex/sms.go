package main

import (
	"flag"
	"fmt"
	"log/slog"

	"blindex.dev/blindex/internal/sms"
)

// smsFlags choose and configure the SMS sender.
type smsFlags struct {
	name *string
}

func addSMSFlags(fs *flag.FlagSet) smsFlags {
	return smsFlags{
		name: fs.String("sms", "log", "SMS sender: log (development only; codes go to the server log)"),
	}
}

func (f smsFlags) sender(logger *slog.Logger) (sms.Sender, error) {
	switch *f.name {
	case "log":
		logger.Warn("using the log SMS sender: verification codes are written to this log (development only)")
		return sms.Log{Logger: logger}, nil
	default:
		return nil, fmt.Errorf("--sms: unknown sender %q (available: log)", *f.name)
	}
}
