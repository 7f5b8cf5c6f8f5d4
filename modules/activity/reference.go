package activity

import (
	"bytes"
	"context"
	_ "embed" // for standardsJSON
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/uptrace/bun"
)

// standardsJSON is the reference data: the apprenticeship standards the app
// supports and their KSBs. It is embedded so a deployed binary carries the
// version of the data its code was written against.
//
//go:embed standards.json
var standardsJSON []byte

type referenceData struct {
	Specs []refSpec `json:"specs"`
	KSBs  []refKSB  `json:"ksbs"`
}

type refSpec struct {
	Code        string `json:"code"`
	Name        string `json:"name"`
	Level       int    `json:"level"`
	Description string `json:"description"`
	KSBPrefix   string `json:"ksb_prefix"`
	Available   bool   `json:"available"`
}

// refKSB is a KSB as the JSON holds it, with its stored and natural codes
// worked out from Code (see ksbCodes).
type refKSB struct {
	Code        string `json:"code"`
	SpecCode    string `json:"spec_code"`
	Category    string `json:"category"`
	Title       string `json:"title"`
	Description string `json:"description"`

	stored, natural string
	sortOrder       int
}

// reference parses standardsJSON once; it cannot change while the process
// runs.
var reference = sync.OnceValues(func() (referenceData, error) {
	var d referenceData
	dec := json.NewDecoder(bytes.NewReader(standardsJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("standards.json: %w", err)
	}
	prefix := make(map[string]string, len(d.Specs))
	for _, s := range d.Specs {
		prefix[s.Code] = s.KSBPrefix
	}
	for i, k := range d.KSBs {
		p, ok := prefix[k.SpecCode]
		if !ok {
			return d, fmt.Errorf("standards.json: KSB %s names unknown standard %q", k.Code, k.SpecCode)
		}
		stored, natural, err := ksbCodes(p, k.Code)
		if err != nil {
			return d, fmt.Errorf("standards.json: standard %s: %w", k.SpecCode, err)
		}
		d.KSBs[i].stored, d.KSBs[i].natural = stored, natural
		d.KSBs[i].sortOrder = ksbSortOrder(natural)
	}
	return d, nil
})

// ksbCodes returns the code a KSB is stored under (the standard's prefix
// and the natural code, so that two standards' "K1" do not collide) and its
// natural code (what people see). standards.json gives some standards' codes
// already prefixed ("AK1" for ST0763, whose prefix is "A") and others bare
// ("K1"); both shapes are accepted, told apart by the natural code's form.
func ksbCodes(prefix, code string) (stored, natural string, err error) {
	if isNaturalKSBCode(code) {
		return prefix + code, code, nil
	}
	if rest, ok := strings.CutPrefix(code, prefix); ok && prefix != "" && isNaturalKSBCode(rest) {
		return code, rest, nil
	}
	return "", "", fmt.Errorf("KSB code %q: want K, S or B and a number, optionally after the prefix %q", code, prefix)
}

// ksbSortOrder orders natural codes as people list them: knowledge, then
// skills, then behaviours, each by number (K2 before K10).
func ksbSortOrder(natural string) int {
	n, _ := strconv.Atoi(natural[1:])
	return strings.IndexByte("KSB", natural[0])*10000 + n
}

// isNaturalKSBCode reports whether code looks like K1, S12 or B3.
func isNaturalKSBCode(code string) bool {
	if len(code) < 2 || !strings.ContainsRune("KSB", rune(code[0])) {
		return false
	}
	for _, c := range code[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// SeedReference upserts the embedded standards.json into spec and ksb. It is
// idempotent and safe to call at every start, from several processes at once:
// rows that already match are left untouched, so a start with nothing new
// writes no pages. KSBs dropped from the JSON are kept, because activities
// may still refer to them.
func (s *Store) SeedReference(ctx context.Context) error {
	d, err := reference()
	if err != nil {
		return fmt.Errorf("seed reference data: %w", err)
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, sp := range d.Specs {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO spec (code, name, level, description, ksb_prefix, available)
				VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (code) DO UPDATE SET
					name = excluded.name, level = excluded.level, description = excluded.description,
					ksb_prefix = excluded.ksb_prefix, available = excluded.available
				WHERE (spec.name, spec.level, spec.description, spec.ksb_prefix, spec.available)
					IS DISTINCT FROM (excluded.name, excluded.level, excluded.description, excluded.ksb_prefix, excluded.available)`,
				sp.Code, sp.Name, sp.Level, sp.Description, sp.KSBPrefix, sp.Available); err != nil {
				return fmt.Errorf("standard %s: %w", sp.Code, err)
			}
		}
		for _, k := range d.KSBs {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO ksb (code, natural_code, spec_code, category, title, description, sort_order)
				VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (code) DO UPDATE SET
					natural_code = excluded.natural_code, spec_code = excluded.spec_code,
					category = excluded.category, title = excluded.title, description = excluded.description,
					sort_order = excluded.sort_order
				WHERE (ksb.natural_code, ksb.spec_code, ksb.category, ksb.title, ksb.description, ksb.sort_order)
					IS DISTINCT FROM (excluded.natural_code, excluded.spec_code, excluded.category, excluded.title, excluded.description, excluded.sort_order)`,
				k.stored, k.natural, k.SpecCode, k.Category, k.Title, k.Description, k.sortOrder); err != nil {
				return fmt.Errorf("KSB %s: %w", k.stored, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seed reference data: %w", err)
	}
	return nil
}
