package term

import (
	"os"
	"testing"
)

// TestNoColor: https://no-color.org — present and not empty disables
// colours, whatever the value; unset or empty does not.
func TestNoColor(t *testing.T) {
	for v, want := range map[string]bool{"1": true, "0": true, "false": true, " ": true, "": false} {
		t.Setenv("NO_COLOR", v)
		if NoColor() != want {
			t.Errorf("NO_COLOR=%q: NoColor() = %v, want %v", v, !want, want)
		}
	}
	t.Setenv("NO_COLOR", "")
	os.Unsetenv("NO_COLOR")
	if NoColor() {
		t.Error("NO_COLOR unset: NoColor() = true")
	}
}
