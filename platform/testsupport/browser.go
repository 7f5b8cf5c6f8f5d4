package testsupport

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// Browser returns a chromedp context driving a fresh headless Chromium,
// closed when the test ends. Without Chromium the test is skipped with the
// package to install, unless CI=true, where that is a failure.
func Browser(t testing.TB) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("Chromium not found (CI=true): install Debian's chromium package; scripts/test does this when run as root")
		}
		t.Skip("Chromium not found: install Debian's chromium package (scripts/test does), or this browser test stays skipped")
	}
	// Not t.TempDir: Chromium's children may still write there for a
	// moment after it stops, which would fail the test's own cleanup.
	dir, err := os.MkdirTemp("", "otj-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(dir),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium %s: %v", path, err)
	}
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// Room for the accessibility tests, which run axe-core over dozens of
	// page states, on a machine shared with the rest of the suite.
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(cancelTimeout)
	return ctx
}

// RepoRoot is the directory of the repository's go.mod, found from the
// test's working directory (its package's directory) upwards.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// ScreenshotDir is where browser tests keep their screenshots, for CI
// to keep as artefacts: OTJ_ARTIFACTS_DIR when set, else
// <repo>/artifacts/screenshots (ignored by git); one folder a test.
func ScreenshotDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("OTJ_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "artifacts", "screenshots")
	}
	dir = filepath.Join(dir, strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Screenshot saves the whole page as ScreenshotDir/<name>.png at the
// viewport's width as it is.
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG; less is JPEG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(ScreenshotDir(t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

// ScreenshotAt sets the viewport width px wide, saves the page as
// Screenshot does under <name>-<width>.png, and returns how wide the
// page's content is (more than width: it scrolls sideways).
func ScreenshotAt(t testing.TB, ctx context.Context, name string, width int64) int {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 900)); err != nil {
		t.Fatal(err)
	}
	Screenshot(t, ctx, fmt.Sprintf("%s-%d", name, width))
	sw, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

// axeScript is axe-core's axe.min.js, which scripts/test installs with
// npm ci in modules/web/browsertest.
func axeScript(t testing.TB) string {
	t.Helper()
	path := filepath.Join(RepoRoot(t), "modules", "web", "browsertest", "node_modules", "axe-core", "axe.min.js")
	b, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("axe-core not installed (CI=true): run npm ci in modules/web/browsertest (scripts/test does): %v", err)
		}
		t.Skipf("axe-core not installed: run npm ci in modules/web/browsertest (scripts/test does), or this accessibility test stays skipped: %v", err)
	}
	return string(b)
}

// RequireAxe skips the test when axe-core is not installed, or fails it
// under CI=true: call it before starting what the test needs.
func RequireAxe(t testing.TB) {
	t.Helper()
	axeScript(t)
}

// AxeViolation is one rule axe-core found broken on a page, with the
// elements that break it.
type AxeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

// Axe runs axe-core over the page the browser shows and returns its
// serious and critical violations. The script goes in through the
// DevTools protocol, which the page's Content-Security-Policy does not
// govern, so pages need no exception for it.
func Axe(t testing.TB, ctx context.Context) []AxeViolation {
	t.Helper()
	script := axeScript(t)
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof axe === "object"`))
	if err != nil {
		t.Fatalf("look for axe-core on the page: %v", err)
	}
	if !loaded {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](script)); err != nil {
			t.Fatalf("inject axe-core: %v", err)
		}
	}
	found, err := chromedp.Run(ctx, chromedp.Evaluate[[]AxeViolation](`axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
	.filter(v => v.impact === 'serious' || v.impact === 'critical')
	.map(v => ({id: v.id, impact: v.impact, help: v.help,
		targets: v.nodes.map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').replace(/\s+/g, ' '))})))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("run axe-core: %v", err)
	}
	return found
}

// CheckAxe runs Axe and fails the test for each serious or critical
// violation, naming page, the rule and the elements.
func CheckAxe(t testing.TB, ctx context.Context, page string) {
	t.Helper()
	for _, v := range Axe(t, ctx) {
		t.Errorf("%s: axe %s (%s): %s: %s", page, v.ID, v.Impact, v.Help, strings.Join(v.Targets, "; "))
	}
}

// ColorScheme makes the browser report prefers-color-scheme as scheme
// ("light" or "dark") to the page's stylesheet, from now on.
func ColorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	})
}
