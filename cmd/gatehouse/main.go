// Command gatehouse is the identity gateway: an edge reverse proxy that
// signs people in (SAML, OIDC, social, local accounts), decides per request
// under one YAML policy, and forwards allowed requests with identity
// headers and a signed assertion.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/gatehouse-dev/gatehouse/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `gatehouse: the identity gateway

Usage:
  gatehouse demo                       run the full demo on localhost (DEMO ONLY: customers, employees, consent)
  gatehouse serve    -c FILE           run the gateway
  gatehouse validate -c FILE           check a policy; print every problem
  gatehouse explain  -c FILE --url URL [--method M] [identity flags]
                                       show the route, rule and decision for a request
  gatehouse keys                       generate a session key and an assertion signing key
  gatehouse keys saml [--cn NAME]      generate a SAML service provider key pair
  gatehouse sessions revoke --user NAME | --provider P --subject S | --session ID
                                       end sessions through a running gateway's admin API
                                       (token in GATEHOUSE_ADMIN_TOKEN)
  gatehouse privacy export --subject KEY [-o FILE]
                                       a customer's data (KEY "issuer|subject"), through the admin API
  gatehouse privacy erase --subject KEY --yes
                                       end a customer's sessions and erase their data, through the admin API
  gatehouse schema                     print the JSON Schema of gatehouse.yaml
  gatehouse version                    print the version

Run 'gatehouse COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code: 0 success,
// 1 a problem with the input (bad policy, bad flags), 2 usage errors.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(rest, stdout, stderr)
	case "demo":
		err = cmdDemo(rest, stdout, stderr)
	case "validate":
		err = cmdValidate(rest, stdout, stderr)
	case "explain":
		err = cmdExplain(rest, stdout, stderr)
	case "keys":
		err = cmdKeys(rest, stdout, stderr)
	case "sessions":
		err = cmdSessions(rest, stdout, stderr)
	case "privacy":
		err = cmdPrivacy(rest, stdout, stderr)
	case "schema":
		err = cmdSchema(rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "gatehouse %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "gatehouse %s: %v\n", cmd, err)
		return 2
	}
	var ds config.Diagnostics
	if errors.As(err, &ds) {
		fmt.Fprintln(stderr, ds.Error())
		fmt.Fprintf(stderr, "%d problem(s) found\n", len(ds))
		return 1
	}
	fmt.Fprintf(stderr, "gatehouse %s: %v\n", cmd, err)
	return 1
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gatehouse "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
