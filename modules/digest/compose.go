package digest

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"strconv"
	"strings"
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
	Subject     string
	// AppURL is the app's task list at BASE_URL; "" when not known.
	AppURL string
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
{{end}}{{if .AppURL}}
Your log and tasks: {{.AppURL}}
{{end}}`))

// htmlBody is the HTML part: html/template escapes every value.
// The styles are in the head, not on each element: mail clients that
// drop them still show a readable document.
var htmlBody = htmltemplate.Must(htmltemplate.New("html").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Subject}}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1f2328; line-height: 1.5; max-width: 40em; margin: 0 auto; padding: 1em; }
h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.3em 0.5em; border-bottom: 1px solid #d0d7de; vertical-align: top; }
td.hours, th.hours { text-align: right; white-space: nowrap; }
a { color: #0969da; }
.footer { margin-top: 2em; font-size: 0.9em; color: #57606a; }
</style>
</head>
<body>
<p>Hello {{if .Name}}{{.Name}}{{else}}there{{end}},</p>
<p>Your off-the-job training for {{.Week}}.</p>
<ul>
<li>This week: <strong>{{hours .WeekHours}} hours</strong>{{if .WeekTarget}} of your {{hours .WeekTarget}}-hour weekly target{{end}}.</li>
<li>In all: <strong>{{hours .TotalHours}} hours</strong>{{if .OTJTarget}} of your {{hours .OTJTarget}}-hour OTJ target{{end}}.</li>
</ul>
{{if .Activities}}<h2>This week's activities</h2>
<table><tr><th>Date</th><th>Activity</th><th>Type</th><th class="hours">Hours</th></tr>
{{range .Activities}}<tr><td>{{day .Date}}</td><td>{{.Title}}</td><td>{{.TypeLabel}}</td><td class="hours">{{hours .Hours}}</td></tr>
{{end}}</table>{{else}}<p>You logged no activities this week.</p>{{end}}
{{if .Unevidenced}}<h2>KSBs with no evidence yet</h2>
<ul>{{range .Unevidenced}}<li>{{.NaturalCode}}: {{.Title}}</li>{{end}}</ul>{{else if .HasSpec}}<p>Every KSB of your standard has evidence.</p>{{end}}
{{if .AppURL}}<p class="footer"><a href="{{.AppURL}}">Open OTJ Helper</a> to see your log and tasks.</p>{{end}}
</body>
</html>
`))

// appURL is where the digest links to: the task list at BASE_URL.
func appURL(baseURL string) string {
	if baseURL == "" {
		return ""
	}
	return strings.TrimRight(baseURL, "/") + "/tasks/"
}

// compose builds the user's digest of week, dated now, linking to the app
// at baseURL ("" for no link).
func compose(from *mail.Address, u activity.User, week Week, f activity.DigestFacts, msgID string, now time.Time, baseURL string) (*gomail.Msg, error) {
	c := content{
		Name: u.Name, Week: week.Title(), WeekHours: f.WeekHours, WeekTarget: u.WeeklyTargetHours,
		TotalHours: f.TotalHours, OTJTarget: u.OTJTargetHours, Activities: f.Week, Unevidenced: f.Unevidenced,
		HasSpec: u.SelectedSpec != "", AppURL: appURL(baseURL),
	}
	c.Subject = subject(week, c)
	var text, html bytes.Buffer
	if err := textBody.Execute(&text, c); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	if err := htmlBody.Execute(&html, c); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	m := gomail.NewMsg()
	m.FromMailAddress(from)
	// The name the body greets, in To as well: mail clients show it.
	to, err := mail.ParseAddress(u.Email)
	if err != nil {
		// By id: the error is kept in the task's history.
		return nil, fmt.Errorf("compose: the address of user %d: %w", u.ID, err)
	}
	to.Name = strings.TrimSpace(u.Name) // net/mail quotes and encodes it
	m.ToMailAddress(to)
	m.Subject(c.Subject)
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
