// Package idp holds copy-paste policies for common identity providers
// (docs/providers.md shows them). The test keeps every one of them valid.
package idp

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/app"
)

func TestExamplePoliciesAreValid(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("example policies: %v %v", files, err)
	}
	env := func(name string) (string, bool) {
		switch name {
		case "GATEHOUSE_SESSION_KEY":
			return "0123456789abcdef0123456789abcdef-example", true
		case "OKTA_METADATA_URL", "ENTRA_METADATA_URL":
			return "https://idp.example.com/metadata", true
		case "ENTRA_TENANT_ID":
			return "72f988bf-86f1-41af-91ab-2d7cd011db47", true
		}
		return "example-" + name, true
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := app.LoadBytes(f, data, env); err != nil {
				t.Fatalf("%s does not validate:\n%v", f, err)
			}
		})
	}
	// The quickstart policy too.
	data, err := os.ReadFile("../quickstart/gatehouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.LoadBytes("quickstart", data, env); err != nil {
		t.Fatal(err)
	}
}
