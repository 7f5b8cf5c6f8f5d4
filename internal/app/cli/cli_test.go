package cli

import (
	"io"
	"reflect"
	"testing"
)

func TestParseFlagsAnywhere(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantPos  []string
		wantJSON bool
	}{
		{"flag first", []string{"--json", "ID"}, []string{"ID"}, true},
		{"flag last", []string{"ID", "--json"}, []string{"ID"}, true},
		{"between", []string{"A", "--json", "B"}, []string{"A", "B"}, true},
		{"none", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := NewFlagSet("tasks show", " ID", io.Discard)
			asJSON := fs.Bool("json", false, "")
			pos, err := ParseFlags(fs, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pos, tt.wantPos) || *asJSON != tt.wantJSON {
				t.Errorf("pos %q, json %v; want %q, %v", pos, *asJSON, tt.wantPos, tt.wantJSON)
			}
		})
	}
}

func TestFlagError(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // "" for no error
	}{
		{"help is not an error", []string{"-h"}, ""},
		{"unknown flag", []string{"--frob"}, "tasks show: flag provided but not defined: -frob"},
		{"missing", nil, "tasks show: missing argument; usage: app tasks show ID"},
		{"extra", []string{"A", "B"}, `tasks show: unexpected argument "B"; usage: app tasks show ID`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := NewFlagSet("tasks show", " ID", io.Discard)
			pos, err := ParseFlags(fs, tt.args)
			got := FlagError(err, fs, "tasks show ID", pos)
			switch {
			case tt.want == "" && got != nil:
				t.Errorf("got %v, want nil", got)
			case tt.want != "" && (got == nil || got.Error() != tt.want):
				t.Errorf("got %v, want %q", got, tt.want)
			}
		})
	}
}
