package state_test

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/state"
	"github.com/gatehouse-dev/gatehouse/state/statetest"
)

func TestMemoryConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Shared {
		m := state.NewMemory(nil)
		t.Cleanup(func() { _ = m.Close() })
		return m
	})
}
