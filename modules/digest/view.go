package digest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// maxMessageBytes bounds how much of a stored digest RenderHTML reads: a
// digest is a few kilobytes; anything far bigger is not one.
const maxMessageBytes = 4 << 20

// shown is what the "Read the digest" page shows of a message.
type shown struct {
	To, Subject, Date string
	Text              string
}

// page is the fragment RenderHTML writes: html/template escapes every
// value, and it holds no script and no inline style (the pages' CSP).
var page = template.Must(template.New("digest").Parse(`<section class="digest">
<dl class="digest-headers">
<dt>To</dt><dd>{{.To}}</dd>
<dt>Subject</dt><dd>{{.Subject}}</dd>
<dt>Date</dt><dd>{{.Date}}</dd>
</dl>
<pre class="digest-text">{{.Text}}</pre>
</section>
`))

// RenderHTML writes a stored digest (an RFC 5322 message) as an HTML
// fragment: its To, Subject and Date, and its plain-text part. It has the
// signature of tasktype.ResultView.Render: the digest's kind offers it
// as its result's page, and the web shows it without this module
// importing the web.
func RenderHTML(_ context.Context, w io.Writer, _ tasktype.Task, result io.Reader) error {
	msg, err := mail.ReadMessage(io.LimitReader(result, maxMessageBytes))
	if err != nil {
		return fmt.Errorf("digest: read message: %w", err)
	}
	var dec mime.WordDecoder
	subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		subj = msg.Header.Get("Subject")
	}
	text, err := findPart(msg.Header, msg.Body, "text/plain")
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	return page.Execute(w, shown{To: msg.Header.Get("To"), Subject: subj, Date: msg.Header.Get("Date"), Text: text})
}

// header is what plainPart reads of a message's or a part's header.
type header interface{ Get(string) string }

// findPart finds the first part of media type want, through nested
// multiparts, and decodes its transfer encoding.
func findPart(h header, body io.Reader, want string) (string, error) {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", fmt.Errorf("content type %q: %w", ct, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return "", errors.New("no " + want + " part")
			}
			if err != nil {
				return "", fmt.Errorf("multipart: %w", err)
			}
			if s, err := findPart(p.Header, p, want); err == nil {
				return s, nil
			}
		}
	}
	if mt != want {
		return "", fmt.Errorf("part is %s", mt)
	}
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return "", fmt.Errorf("text part: %w", err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n"), nil
}
