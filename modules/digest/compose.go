package digest

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"strconv"
	texttemplate "text/template"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/otjhelper/otj/modules/activity"
)

// content is what the digest's two parts show.
type content struct {
	Name        string
	Week        string // the week's title
	WeekHours   float64
	WeekTarget  float64 // 0: none set
	TotalHours  float64
	OTJTarget   float64 // 0: none set
	Activities  []activity.WeekActivity
	Unevidenced []activity.KSB
	HasSpec     bool
}

var funcs = map[string]any{
	"hours": func(h float64) string { return strconv.FormatFloat(h, 'f', 1, 64) },
	"day":   func(t time.Time) string { return t.Format("Mon 2 Jan") },
}

// textBody is the plain-text part. text/template does not escape, and
// needs not: the part is text/plain, shown as text.
var textBody = texttemplate.Must(texttemplate.New("text").Funcs(funcs).Parse(`Hello {{if .Name}}{{.Name}}{{else}}there{{end}},

Your off-the-job training for {{.Week}}.

This week: {{hours .WeekHours}} hours{{if .WeekTarget}} of your {{hours .WeekTarget}}-hour weekly target{{end}}.
In all: {{hours .TotalHours}} hours{{if .OTJTarget}} of your {{hours .OTJTarget}}-hour OTJ target{{end}}.

{{if .Activities}}This week's activities:
{{range .Activities}}- {{day .Date}}: {{.Title}} ({{.TypeLabel}}, {{hours .Hours}} h)
{{end}}{{else}}You logged no activities this week.
{{end}}
{{if .Unevidenced}}KSBs of your standard with no evidence yet:
{{range .Unevidenced}}- {{.NaturalCode}}: {{.Title}}
{{end}}{{else if .HasSpec}}Every KSB of your standard has evidence.
{{end}}`))

// htmlBody is the HTML part: html/template escapes every value.
var htmlBody = htmltemplate.Must(htmltemplate.New("html").Funcs(funcs).Parse(`<!DOCTYPE html>
<html><body>
<p>Hello {{if .Name}}{{.Name}}{{else}}there{{end}},</p>
<p>Your off-the-job training for {{.Week}}.</p>
<ul>
<li>This week: <strong>{{hours .WeekHours}} hours</strong>{{if .WeekTarget}} of your {{hours .WeekTarget}}-hour weekly target{{end}}.</li>
<li>In all: <strong>{{hours .TotalHours}} hours</strong>{{if .OTJTarget}} of your {{hours .OTJTarget}}-hour OTJ target{{end}}.</li>
</ul>
{{if .Activities}}<h2>This week's activities</h2>
<table><tr><th>Date</th><th>Activity</th><th>Type</th><th>Hours</th></tr>
{{range .Activities}}<tr><td>{{day .Date}}</td><td>{{.Title}}</td><td>{{.TypeLabel}}</td><td>{{hours .Hours}}</td></tr>
{{end}}</table>{{else}}<p>You logged no activities this week.</p>{{end}}
{{if .Unevidenced}}<h2>KSBs with no evidence yet</h2>
<ul>{{range .Unevidenced}}<li>{{.NaturalCode}}: {{.Title}}</li>{{end}}</ul>{{else if .HasSpec}}<p>Every KSB of your standard has evidence.</p>{{end}}
</body></html>
`))

// compose builds the user's digest of week, dated now.
func compose(from *mail.Address, u activity.User, week Week, f activity.DigestFacts, msgID string, now time.Time) (*gomail.Msg, error) {
	c := content{
		Name: u.Name, Week: week.Title(), WeekHours: f.WeekHours, WeekTarget: u.WeeklyTargetHours,
		TotalHours: f.TotalHours, OTJTarget: u.OTJTargetHours, Activities: f.Week, Unevidenced: f.Unevidenced,
		HasSpec: u.SelectedSpec != "",
	}
	var text, html bytes.Buffer
	if err := textBody.Execute(&text, c); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	if err := htmlBody.Execute(&html, c); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	m := gomail.NewMsg()
	m.FromMailAddress(from)
	if err := m.To(u.Email); err != nil {
		return nil, fmt.Errorf("compose: to %q: %w", u.Email, err)
	}
	m.Subject(subject(week, c))
	m.SetMessageIDWithValue(msgID)
	m.SetDateWithValue(now)
	m.SetBodyString(gomail.TypeTextPlain, text.String())
	m.AddAlternativeString(gomail.TypeTextHTML, html.String())
	return m, nil
}

// subject is the digest's subject line: the week's hours, against the
// target when there is one.
func subject(week Week, c content) string {
	s := "Your OTJ digest for " + week.Title() + ": " + strconv.FormatFloat(c.WeekHours, 'f', 1, 64) + " hours"
	if c.WeekTarget > 0 {
		s += " of " + strconv.FormatFloat(c.WeekTarget, 'f', 1, 64)
	}
	return s
}
