package store

import "testing"

// Both dialects must describe the same schema versions, or a version
// number would mean different things on the two backends.
func TestDialectsHaveSameSteps(t *testing.T) {
	lite, err := loadMigrations("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := loadMigrations("postgres")
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) == 0 || len(lite) != len(pg) {
		t.Fatalf("sqlite has %d steps, postgres %d", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].name != pg[i].name {
			t.Errorf("step %d: sqlite %q, postgres %q", i+1, lite[i].name, pg[i].name)
		}
	}
	if SchemaVersion() != len(lite) {
		t.Fatalf("SchemaVersion() = %d, want %d", SchemaVersion(), len(lite))
	}
}
