package main

import (
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/internal/app"
)

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	file := fs.String("c", "gatehouse.yaml", "policy file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	l, err := app.Load(*file)
	if err != nil {
		return err
	}
	// Build everything serve would build (key files, templates, providers)
	// without listening, so a policy that validates also starts.
	opts, _, err := app.Build(l, zap.NewNop(), &app.Secrets{CheckOnly: true})
	if err != nil {
		return err
	}
	app.CloseProviders(opts.Providers)
	c := l.Config
	fmt.Fprintf(stdout, "%s: ok (%d routes, %d roles, %d providers; sha256 %s)\n", *file, len(c.Routes), len(c.Roles), len(c.Providers), l.Hash[:12])
	return nil
}
