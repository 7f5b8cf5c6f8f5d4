package analytics

import "unicode"

// labelFont is the charts' label size in viewBox units (the stylesheet's
// .chart-label font-size of 13px: in an SVG, px are user units).
const labelFont = 13.0

// textWidth is how wide s is at most in the label font, in viewBox
// units. The server cannot measure text, so the charts reserve room by
// this bound: advance widths of DejaVu Sans, the widest sans-serif a
// Debian or Linux browser falls back to (system fonts of other systems
// are narrower), rounded up, by kind of character.
func textWidth(s string) float64 {
	em := 0.0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			em += 0.64
		case r == ' ' || r == '.' || r == ',' || r == ':' || r == ';':
			em += 0.32
		case r == '-':
			em += 0.37
		case r == 'i' || r == 'l' || r == 'j' || r == '\'':
			em += 0.29
		case r == 'f' || r == 't' || r == 'r' || r == '(' || r == ')':
			em += 0.42
		case r == 'm':
			em += 0.98
		case r == 'w':
			em += 0.82
		case r == 'W':
			em += 1.0
		case r == 'M':
			em += 0.87
		case r < 128 && unicode.IsLower(r):
			em += 0.64
		case r < 128 && unicode.IsUpper(r):
			em += 0.78
		default: // other scripts, symbols, emoji
			em += 1.0
		}
	}
	return em * labelFont
}

// fitText is s when it fits in width, else as much of it as fits
// followed by "…".
func fitText(s string, width float64) string {
	if textWidth(s) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && textWidth(string(r)+"…") > width {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}
