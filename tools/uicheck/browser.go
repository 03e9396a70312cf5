package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// browser is a headless Chromium with a fresh profile, driven over the
// DevTools protocol.
type browser struct {
	ctx     context.Context // a chromedp context: one tab
	cancel  context.CancelFunc
	profile string
	// wait bounds how long a page may take to show what is expected.
	// Defaults to 30 s.
	wait time.Duration
}

// startBrowser launches chromium headless with the flags this machine needs:
// no sandbox (we run as root), no GPU, and none of Chromium's own network
// traffic (background networking, component updates, sync, QUIC), which a
// closed network refuses; and a new, empty profile.
func startBrowser(ctx context.Context, chromium string) (*browser, error) {
	profile, err := os.MkdirTemp("", "ui-check-chromium-")
	if err != nil {
		return nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], // --headless --disable-background-networking --no-first-run …
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1600, 1400), // the UI scrolls inside its own panes: the window is the screenshot
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	b := &browser{ctx: bctx, profile: profile, cancel: func() { bcancel(); acancel() }, wait: 30 * time.Second}
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		b.close()
		return nil, fmt.Errorf("start %s: %w", chromium, err)
	}
	return b, nil
}

func (b *browser) close() {
	b.cancel()
	_ = os.RemoveAll(b.profile)
}

// open navigates the tab to url and waits for the document to load (the UI
// then fetches its data: see waitText).
func (b *browser) open(url string) error {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("open %s: %w", url, err)
	}
	return nil
}

// pageText is the page's text with that of its same-origin iframes, in which
// the Temporal UI renders markdown (summary, details, event summaries).
const pageText = `(() => {
	const texts = [document.body ? document.body.innerText : ""];
	for (const f of document.querySelectorAll("iframe")) {
		try { texts.push(f.contentDocument.body.innerText); } catch (e) {}
	}
	return texts.join("\n");
})()`

// text is what a person can read on the page.
func (b *browser) text() (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](pageText))
}

// eval runs a JavaScript expression that returns a string.
func (b *browser) eval(js string) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](js))
}

// location is the tab's current URL (after the UI's redirects).
func (b *browser) location() (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Location())
}

// waitText polls the page until its text contains every string of want, for
// at most timeout; with reloadEvery > 0 it reloads the page that often, for
// pages that do not refresh themselves (a list whose data is eventually
// consistent). It returns the page's last text and the strings still missing.
func (b *browser) waitText(want []string, timeout, reloadEvery time.Duration) (text string, missing []string, err error) {
	deadline := time.Now().Add(timeout)
	lastLoad := time.Now()
	for {
		text, err = b.text()
		if err != nil {
			return "", nil, err
		}
		missing = missingStrings(text, want)
		if len(missing) == 0 || time.Now().After(deadline) {
			return text, missing, nil
		}
		if reloadEvery > 0 && time.Since(lastLoad) >= reloadEvery {
			ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
			err = chromedp.Do(ctx, chromedp.Reload())
			cancel()
			if err != nil {
				return "", nil, fmt.Errorf("reload: %w", err)
			}
			lastLoad = time.Now()
		}
		select {
		case <-b.ctx.Done():
			return "", nil, b.ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// screenshot saves the whole page as a PNG file.
func (b *browser) screenshot(path string) error {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		return fmt.Errorf("screenshot %s: %w", path, err)
	}
	return os.WriteFile(path, png, 0o644)
}

// missingStrings returns the strings of want that text does not contain.
func missingStrings(text string, want []string) []string {
	var missing []string
	for _, w := range want {
		if !strings.Contains(text, w) {
			missing = append(missing, w)
		}
	}
	return missing
}
