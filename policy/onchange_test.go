package policy

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func decodeYAML(t *testing.T, src string) (*Policy, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return DecodePolicy(&n, nil)
}

func TestOnChangeDecode(t *testing.T) {
	tests := []struct {
		src, want, wantErr string
	}{
		{"default_action: deny\n", "ask", ""},
		{"on_change: deny\n", "deny", ""},
		{"on_change: allow\n", "allow", ""},
		{"on_change: ask\n", "ask", ""},
		{"on_change: warn\n", "", `1:12: on_change: "warn": want ask, deny or allow`},
		{"on_change: [deny]\n", "", "on_change: want a string"},
	}
	for _, tt := range tests {
		p, err := decodeYAML(t, tt.src)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("DecodePolicy(%q) = %v, want error %q", tt.src, err, tt.wantErr)
			}
			continue
		}
		if err != nil || p.ChangeAction() != OnChange(tt.want) {
			t.Errorf("DecodePolicy(%q).ChangeAction() = %v (%v), want %s", tt.src, p.ChangeAction(), err, tt.want)
		}
	}
	if got := (*Policy)(nil).ChangeAction(); got != OnChangeDeny {
		t.Errorf("nil policy: ChangeAction() = %s, want deny", got)
	}
}

// TestOnChangeInherit: a later section may tighten on_change, never
// loosen it; an unset one inherits.
func TestOnChangeInherit(t *testing.T) {
	tests := []struct {
		base, over OnChange
		want       OnChange
		wantErr    bool
	}{
		{"", "", "", false},
		{"", "allow", "allow", false},
		{"deny", "", "deny", false},
		{"allow", "ask", "ask", false},
		{"ask", "deny", "deny", false},
		{"ask", "ask", "ask", false},
		{"deny", "ask", "", true},
		{"deny", "allow", "", true},
		{"ask", "allow", "", true},
	}
	for _, tt := range tests {
		got, err := Inherit(&Policy{OnChange: tt.base}, &Policy{OnChange: tt.over})
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "not loosen") {
				t.Errorf("Inherit(on_change %q, %q) = %v, want an error saying it cannot loosen", tt.base, tt.over, err)
			}
			continue
		}
		if err != nil || got.OnChange != tt.want {
			t.Errorf("Inherit(on_change %q, %q) = %v, %v; want %q", tt.base, tt.over, got, err, tt.want)
		}
	}
	if got, _ := Inherit(&Policy{OnChange: OnChangeDeny}, nil); got.OnChange != OnChangeDeny {
		t.Errorf("Inherit(deny, nil).OnChange = %q, want deny", got.OnChange)
	}
}
