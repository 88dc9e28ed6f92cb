package main

import (
	"io"

	"github.com/gatehouse-dev/gatehouse/config"
)

func cmdSchema(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("schema", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	b, err := config.Schema()
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(b, '\n'))
	return err
}
