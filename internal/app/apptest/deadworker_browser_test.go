package apptest

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestBrowserDeadWorker is issue 24's dead worker, with real processes:
// app web, and app worker in a process of its own, running a job that
// reported 42% and then works on in silence. The task page, open in a
// browser, says when the worker was last heard from, and keeps saying
// so without reloading: for several leases while the worker lives, it
// never claims the worker stopped. Then the worker is killed (SIGKILL);
// once its lease has passed with no other worker, the page says in a
// plain sentence that the worker stopped and that the task will resume
// when a worker is free. A second worker then takes the job over: the
// same page shows it run again and complete, and its history gives the
// lost attempt its own sentence.
func TestBrowserDeadWorker(t *testing.T) { eachBroker(t, browserDeadWorker) }

func browserDeadWorker(t *testing.T, broker map[string]string) {
	// Long enough that a busy machine's lag (a sign of life every third
	// of it, through the projection and the event stream to the page)
	// stays well within it.
	const lease = 3 * time.Second
	ctx := testsupport.Browser(t)
	env := baseEnv(t)
	env["DEV_AUTO_LOGIN_EMAIL"] = "apprentice@example.org"
	env["JOB_LEASE"] = lease.String()
	maps.Copy(env, broker)
	web := startProcess(t, "web", env, "web")
	base := web.waitStdout(t, runningRE)
	j := web.waitJoin(t)
	wenv := maps.Clone(env)
	maps.Copy(wenv, j.env())
	runs := newRunLog(t)
	wenv[runLogEnv] = runs.path
	victim := startWorker(t, "worker-1", wenv)

	u := ensureUser(t, env["OTJ_DATA_DIR"], "apprentice@example.org")
	b, err := jetstream.Open(testsupport.Context(t), jetstream.Config{Conn: j.connect(t, "test"), AckWait: lease, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(testPayload{MS: 5 * 60 * 1000, Times: 1})
	ectx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	job, err := b.Enqueue(ectx, tasktype.EnqueueRequest{Type: testProgress, UserID: u.ID, Payload: payload})
	cancel()
	if err != nil {
		t.Fatal(err)
	}

	step := func(within time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("%s: %v\n%s", what, err, page)
		}
	}
	text := func(js string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	step(60*time.Second, "the task page never showed the job running at 42%",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/tasks/"+job.ID),
		chromedp.WaitVisible(chromedp.CSS(`body[data-live="open"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#task-live .badge-running`)),
		chromedp.WaitVisible(chromedp.CSS(`#task-live .percent`)),
		chromedp.WaitVisible(chromedp.CSS(`#task-live .heard`)),
	)
	// From here on the page must change by itself; record whether it
	// ever says the worker stopped.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`
		window.liveMarker = "same page";
		window.lostShown = [];
		window.heardSeen = [];
		window.heardAt = [];
		window.lostWatch = setInterval(function () {
			var lost = document.querySelector("#task-live .worker-lost");
			if (lost && !lost.hidden) { window.lostShown.push(lost.textContent.trim()); }
			var heard = document.querySelector("#task-live .heard");
			if (heard) {
				window.heardSeen.push(heard.textContent.trim());
				window.heardAt.push(heard.dataset.heard);
			}
		}, 100);
		true`)); err != nil {
		t.Fatal(err)
	}
	if got := text(`document.querySelector("#task-live .heard").textContent`); !strings.Contains(got, "last heard from") {
		t.Errorf("the running task says %q, want when its worker was last heard from", got)
	}
	// Three leases of silence from the job (it reported 42% once): its
	// live worker must not be taken for a dead one.
	time.Sleep(3 * lease)
	if got := text(`JSON.stringify(window.lostShown.slice(0, 3))`); got != "[]" {
		t.Errorf("with its worker alive, the page said %s", got)
	}
	distinct := `function (v, i, a) { return a.indexOf(v) === i; }`
	heard := text(`JSON.stringify(window.heardSeen.filter(` + distinct + `))`)
	signs := text(`JSON.stringify(window.heardAt.filter(` + distinct + `))`)
	t.Logf("while the worker lived, the page said in turn %s, heard at %s", heard, signs)
	// The silent job's worker is heard from every third of its lease:
	// the page, updated over its event stream, shows each sign of life.
	if strings.Count(signs, ",") < 2 {
		t.Errorf("over three leases the page showed the worker heard from only at %s", signs)
	}
	if !strings.Contains(heard, "last heard from") {
		t.Errorf("the page said %s, want when the worker was last heard from", heard)
	}

	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if _, err := victim.waitExit(t, 10*time.Second); err == nil {
		t.Fatal("killed worker exited with status 0")
	}
	step(30*time.Second, "the page never said the worker stopped",
		chromedp.WaitVisible(chromedp.CSS(`#task-live .worker-lost`)))
	t.Logf("the page said the worker stopped %s after the kill (lease %s)", time.Since(killed).Round(time.Millisecond), lease)
	// The relative time ticks on in the page itself: no event comes
	// from a dead worker.
	testsupport.Eventually(t, 10*time.Second, "after the kill the page never said the worker was last heard from more than a second ago", func() bool {
		return !strings.Contains(text(`document.querySelector("#task-live .heard").textContent`), "from 0 s") &&
			!strings.Contains(text(`document.querySelector("#task-live .heard").textContent`), "from 1 s")
	})
	t.Logf("after the kill the page said %q", text(`document.querySelector("#task-live .heard").textContent`))
	lost := text(`document.querySelector("#task-live .worker-lost").textContent`)
	for _, want := range []string{"stopped", "resume when a worker is free"} {
		if !strings.Contains(lost, want) {
			t.Errorf("the page says %q, want it to say %q", lost, want)
		}
	}
	if got := text(`document.querySelector("#task-live .badge").textContent`); got != "running" {
		t.Errorf("badge %q after the kill, want running still (nothing took the job over)", got)
	}
	name := "jetstream"
	if b := broker["TASKS_BROKER"]; b != "" {
		name = b
	}
	testsupport.ScreenshotAt(t, ctx, "task-worker-lost-"+name, 1280)
	testsupport.ScreenshotAt(t, ctx, "task-worker-lost-"+name, 390)

	startWorker(t, "worker-2", wenv)
	step(60*time.Second, "the job never completed on the second worker",
		chromedp.WaitVisible(chromedp.CSS(`#task-live .badge-completed`)))
	if got := text(`window.liveMarker || "reloaded"`); got != "same page" {
		t.Errorf("the page was reloaded (marker %q)", got)
	}
	history := text(`document.querySelector("ol.timeline").textContent`)
	if !strings.Contains(history, "Attempt 1 failed: The worker running this task stopped responding") ||
		strings.Contains(history, "This attempt did not succeed") {
		t.Errorf("the history does not give the lost attempt its own sentence:\n%s", history)
	}
	if !strings.Contains(history, "Attempt 2 succeeded") {
		t.Errorf("the history does not show attempt 2 succeed:\n%s", history)
	}
	testsupport.ScreenshotAt(t, ctx, "task-worker-lost-"+name+"-resumed", 1280)
	if got := text(`String(document.querySelectorAll("#task-live .worker-lost:not([hidden]), #task-live .heard").length)`); got != "0" {
		t.Errorf("the completed task still shows %s last-heard or worker-lost lines", got)
	}
}
