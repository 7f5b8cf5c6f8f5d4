package web

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/textcheck"
)

// DefaultImportMaxBytes bounds an uploaded CSV unless
// ActivityImport.MaxBytes says otherwise (IMPORT_MAX_BYTES).
const DefaultImportMaxBytes = 10 << 20

// uploadSaveTimeout bounds storing an upload: a few MiB into one row.
const uploadSaveTimeout = 30 * time.Second

// importFormOverhead is what the import form's body may hold beyond the
// file: the multipart boundaries, part headers and the key.
const importFormOverhead = 16 << 10

// Uploads keeps the files users upload for import (activity.Store), in
// the database a worker on another machine reads too.
type Uploads interface {
	SaveUpload(ctx context.Context, userID int64, body []byte) (int64, error)
}

// ActivityImport wires the activity import (Config.Import): the web
// stores the uploaded file and enqueues a job of Type that imports it.
// The web knows neither the job type nor its payload; the app
// (internal/app) passes the reports module's.
type ActivityImport struct {
	// Type is the job type that imports an upload. Required.
	Type string
	// Uploads stores the file. Required.
	Uploads Uploads
	// Payload is the job's payload for the stored upload. Required.
	Payload func(uploadID int64) json.RawMessage
	// MaxBytes bounds the file; default DefaultImportMaxBytes.
	MaxBytes int64
}

func (c *ActivityImport) validate() error {
	if !tasktype.ValidType(c.Type) || c.Uploads == nil || c.Payload == nil {
		return fmt.Errorf("web config: Import needs a job Type, Uploads and Payload (type %q)", c.Type)
	}
	return nil
}

type importData struct {
	FormKey string
	Error   string
	Max     int64
}

// importForm shows the upload form (GET /activities/import).
func (s *server) importForm(w http.ResponseWriter, r *http.Request) {
	s.renderImport(w, r, http.StatusOK, "")
}

func (s *server) renderImport(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	s.render(w, r, "import", view{Title: "Import activities", Nav: "activities",
		Data: importData{FormKey: rand.Text(), Error: msg, Max: s.cfg.Import.MaxBytes}})
}

// importActivities stores the uploaded CSV and starts its import, then
// sends the browser to the task (POST /activities/import).
func (s *server) importActivities(w http.ResponseWriter, r *http.Request) {
	body, key, err := s.readUpload(r)
	switch {
	case TooLarge(err):
		// The rest of the body is not read: close the connection after.
		w.Header().Set("Connection", "close")
		s.fail(w, r, http.StatusRequestEntityTooLarge, "File too large",
			"The file is larger than an import takes ("+humanSize(s.cfg.Import.MaxBytes)+" at most). Split it into smaller files and import each.")
		return
	case err != nil:
		msg := "The form could not be read. Reload the page and try again."
		var bad errBadUpload
		if errors.As(err, &bad) {
			msg = string(bad)
		}
		s.renderImport(w, r, http.StatusBadRequest, msg)
		return
	}
	u := currentUser(r)
	sctx, cancel := context.WithTimeout(r.Context(), uploadSaveTimeout)
	id, err := s.cfg.Import.Uploads.SaveUpload(sctx, u.ID, body)
	cancel()
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	job, ok := s.enqueue(w, r, tasktype.EnqueueRequest{Type: s.cfg.Import.Type, UserID: u.ID, Key: key, Payload: s.cfg.Import.Payload(id)})
	if !ok {
		return
	}
	http.Redirect(w, r, "/tasks/"+job.ID, http.StatusSeeOther)
}

// errBadUpload is a form the user can mend; its text is shown to them.
type errBadUpload string

func (e errBadUpload) Error() string { return string(e) }

// readUpload reads the form's file and idempotency key, streaming the
// multipart body rather than spooling it to disk. A file past MaxBytes
// fails as TooLarge; a form the user can mend as an errBadUpload.
func (s *server) readUpload(r *http.Request) ([]byte, string, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		return nil, "", errBadUpload("Choose a CSV file to import, then press Import.")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", errBadUpload("The form could not be read. Reload the page and try again.")
	}
	var body []byte
	var key string
	haveFile := false
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if TooLarge(err) {
				return nil, "", err
			}
			return nil, "", errBadUpload("The form could not be read. Reload the page and try again.")
		}
		switch p.FormName() {
		case "file":
			max := s.cfg.Import.MaxBytes
			body, err = io.ReadAll(io.LimitReader(p, max+1))
			if err == nil && int64(len(body)) > max {
				err = &http.MaxBytesError{Limit: max}
			}
			haveFile = p.FileName() != ""
		case "key":
			var b []byte
			b, err = io.ReadAll(io.LimitReader(p, 65))
			key = string(b)
		default:
			_, err = io.Copy(io.Discard, p)
		}
		if err != nil {
			if TooLarge(err) {
				return nil, "", err
			}
			return nil, "", errBadUpload("The form could not be read. Reload the page and try again.")
		}
	}
	// The file's cells are checked by the import job; the one other
	// field passes the check every form field passes (checkInput).
	if textcheck.Check(key) != nil || !validFormKey(key) {
		return nil, "", errBadUpload("The form is malformed (bad key). Reload the page and try again.")
	}
	if !haveFile {
		return nil, "", errBadUpload("Choose a CSV file to import, then press Import.")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, "", errBadUpload("The file is empty. Choose a report CSV that holds activities.")
	}
	return body, key, nil
}
