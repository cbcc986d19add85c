package main

import (
	"io"
	"log/slog"
)

// logFormats are the values of --log-format.
var logFormats = []string{"json", "text"}

// newLogHandler is the handler of the server's log on w: one JSON object a
// line (format "json"), or key=value pairs (format "text", slog's text
// handler). Either way every duration is written as time.Duration.String
// writes it ("1.234ms", "2m30s"), never as integer nanoseconds.
func newLogHandler(w io.Writer, format string, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: readableDuration}
	if format == "text" {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}

// readableDuration is the handlers' ReplaceAttr: the one place where
// durations get their form in the log. slog's JSON handler would write
// them as integer nanoseconds.
func readableDuration(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
