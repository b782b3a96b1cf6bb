//! A headless Chromium for the web console's browser tests: ChromeDriver as a harness daemon, a
//! minimal W3C WebDriver client over it, and axe-core accessibility checks (all three installed by
//! scripts/install-browser.sh).
//!
//! The tests are plain synchronous `#[test]` functions, so every call blocks on a current-thread
//! runtime the [`Browser`] owns. WebDriver errors and expired waits panic with what was asked and
//! what the driver answered: these are test helpers, and a panic is the failure report.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::process::{Daemon, POLL};

/// The key of an element reference in WebDriver JSON (fixed by the W3C specification).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long ChromeDriver may take to listen; it starts in well under a second when healthy.
const DRIVER_START: Duration = Duration::from_secs(30);

/// A bound on every HTTP exchange with the driver, above the session's own page-load and script
/// timeouts, so that a wedged driver fails the test instead of hanging it.
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);
const PAGE_LOAD_TIMEOUT_MS: u64 = 60_000;
const SCRIPT_TIMEOUT_MS: u64 = 30_000;

/// Keys (WebDriver's private-use code points) for [`Browser::send_keys_active`] and
/// [`Element::send_keys`].
pub(crate) mod keys {
    /// Releases the modifiers held so far.
    pub(crate) const NULL: &str = "\u{E000}";
    pub(crate) const BACKSPACE: &str = "\u{E003}";
    pub(crate) const TAB: &str = "\u{E004}";
    pub(crate) const ENTER: &str = "\u{E007}";
    pub(crate) const SHIFT: &str = "\u{E008}";
    pub(crate) const ESCAPE: &str = "\u{E00C}";
    pub(crate) const SPACE: &str = "\u{E00D}";
    pub(crate) const ARROW_LEFT: &str = "\u{E012}";
    pub(crate) const ARROW_UP: &str = "\u{E013}";
    pub(crate) const ARROW_RIGHT: &str = "\u{E014}";
    pub(crate) const ARROW_DOWN: &str = "\u{E015}";
}

/// How a [`Browser`] session is set up.
#[derive(Debug, Clone)]
pub(crate) struct BrowserOptions {
    /// `false` blocks page scripts through Chromium's content settings; WebDriver's own scripts
    /// (`execute`, element lookups, axe) still run, so the test can inspect a script-free page.
    pub(crate) javascript: bool,
    /// The viewport (what pages lay out in and screenshots show), in CSS pixels. Any size
    /// works, phone widths included; see [`Browser::set_viewport`].
    pub(crate) viewport: (u32, u32),
    /// Pages see `prefers-color-scheme: dark`.
    pub(crate) dark: bool,
    /// The default bound of [`Browser::find`] and [`Element::find`].
    pub(crate) timeout: Duration,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            javascript: true,
            viewport: (1280, 900),
            dark: false,
            timeout: Duration::from_secs(10),
        }
    }
}

impl BrowserOptions {
    pub(crate) fn no_javascript(mut self) -> Self {
        self.javascript = false;
        self
    }

    pub(crate) fn viewport(mut self, width: u32, height: u32) -> Self {
        self.viewport = (width, height);
        self
    }

    pub(crate) fn dark(mut self) -> Self {
        self.dark = true;
        self
    }

    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// An error the driver answered with (W3C error JSON: `error`, `message`, `stacktrace`).
#[derive(Debug)]
struct WdError {
    status: u16,
    json: Value,
}

impl WdError {
    fn code(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    /// An element lookup that may succeed on a later poll.
    fn is_transient(&self) -> bool {
        matches!(self.code(), "no such element" | "stale element reference")
    }
}

/// One ChromeDriver with one headless Chromium session; dropping it ends both.
pub(crate) struct Browser {
    // Field order is drop order: the runtime and client outlive `Drop::drop` (which deletes the
    // session), then the driver's process group stops, then the profile directory goes.
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    session: String,
    timeout: Duration,
    javascript: bool,
    driver: Daemon,
    _profile: TempDir,
}

impl Browser {
    /// Starts `$OTAAS_CHROMEDRIVER` (default /usr/bin/chromedriver) on a free loopback port and
    /// opens a session on `$OTAAS_CHROMIUM` (default /usr/bin/chromium) with a throwaway profile.
    #[track_caller]
    pub(crate) fn start(opts: BrowserOptions) -> Self {
        let chromium = tool("OTAAS_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = tool("OTAAS_CHROMEDRIVER", "/usr/bin/chromedriver");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime for the WebDriver client");
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .expect("HTTP client for the WebDriver client");
        let profile = tempfile::Builder::new()
            .prefix("otaas-chromium-")
            .tempdir()
            .expect("temp dir for the Chromium profile");

        let port = free_port();
        let mut cmd = Command::new(&chromedriver);
        cmd.arg(format!("--port={port}"));
        let mut driver = Daemon::spawn("chromedriver", &mut cmd, |_| {});
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&rt, &http, &base, &mut driver);

        let (width, height) = opts.viewport;
        let mut args = vec![
            "--headless=new".to_owned(),
            // Chromium refuses to start as root with its sandbox, and tests run as root in CI.
            "--no-sandbox".to_owned(),
            // Containers often have a small /dev/shm; running out of it crashes the renderer.
            "--disable-dev-shm-usage".to_owned(),
            "--disable-gpu".to_owned(),
            // A first guess: set_viewport below corrects for the window's invisible browser UI.
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
            // Keep pages' text and Accept-Language the same on every machine.
            "--lang=en-US".to_owned(),
        ];
        if opts.dark {
            // Chromium's native theme is what `prefers-color-scheme` reports to pages, so a dark
            // theme from the command line holds for every page without DevTools emulation.
            args.push("--force-dark-mode".to_owned());
        }
        let mut chrome_options = json!({
            "binary": chromium,
            "args": args,
        });
        if !opts.javascript {
            // The policy-level ("managed") default, which the profile's own settings cannot
            // override.
            chrome_options["prefs"] =
                json!({"profile": {"managed_default_content_settings": {"javascript": 2}}});
        }
        let body = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {
                "implicit": 0,
                "pageLoad": PAGE_LOAD_TIMEOUT_MS,
                "script": SCRIPT_TIMEOUT_MS,
            },
            "goog:chromeOptions": chrome_options,
        }}});
        let created = rt
            .block_on(send(
                &http,
                &base,
                Method::POST,
                "/session",
                Some(body),
                None,
            ))
            .unwrap_or_else(|err| {
                panic!(
                    "WebDriver POST /session failed: {err}\n--- chromedriver log\n{}",
                    driver.log()
                )
            });
        let session = match created {
            Ok(value) => value["sessionId"]
                .as_str()
                .unwrap_or_else(|| panic!("WebDriver POST /session: no sessionId in {value}"))
                .to_owned(),
            Err(err) => panic!(
                "WebDriver POST /session failed ({}): {}\n--- chromedriver log\n{}",
                err.status,
                err.json,
                driver.log()
            ),
        };
        let browser = Self {
            rt,
            http,
            base,
            session,
            timeout: opts.timeout,
            javascript: opts.javascript,
            driver,
            _profile: profile,
        };
        browser.set_viewport(width, height);
        browser
    }

    /// Navigates and waits for the page's load event.
    #[track_caller]
    pub(crate) fn goto(&self, url: &str) {
        self.cmd(Method::POST, "url", Some(json!({ "url": url })));
    }

    #[track_caller]
    pub(crate) fn current_url(&self) -> String {
        string(self.cmd(Method::GET, "url", None))
    }

    #[track_caller]
    pub(crate) fn title(&self) -> String {
        string(self.cmd(Method::GET, "title", None))
    }

    #[track_caller]
    pub(crate) fn back(&self) {
        self.cmd(Method::POST, "back", Some(json!({})));
    }

    #[track_caller]
    pub(crate) fn refresh(&self) {
        self.cmd(Method::POST, "refresh", Some(json!({})));
    }

    /// The serialized DOM as it is now (after scripts), not the bytes the server sent.
    #[track_caller]
    pub(crate) fn page_source(&self) -> String {
        string(self.cmd(Method::GET, "source", None))
    }

    /// Sizes the window so that the viewport is `width` x `height` CSS pixels; it stays so across
    /// navigations.
    ///
    /// Headless Chromium's window is not its viewport: it keeps room for browser UI that is not
    /// drawn (`--window-size=1280,900` gives a 1280x757 viewport) and never gets narrower than
    /// 500 px, though the viewport inside it does. So this measures the difference and corrects
    /// the window until the viewport is right.
    #[track_caller]
    pub(crate) fn set_viewport(&self, width: u32, height: u32) {
        let target = [i64::from(width), i64::from(height)];
        let rect = self.cmd(Method::GET, "window/rect", None);
        let mut window = [dimension(&rect["width"]), dimension(&rect["height"])];
        let mut seen = Value::Null;
        for _ in 0..4 {
            seen = self.execute("return [window.innerWidth, window.innerHeight];", &[]);
            let inner = [dimension(&seen[0]), dimension(&seen[1])];
            if inner == target {
                return;
            }
            window = [
                window[0] + target[0] - inner[0],
                window[1] + target[1] - inner[1],
            ];
            self.cmd(
                Method::POST,
                "window/rect",
                Some(json!({"width": window[0], "height": window[1]})),
            );
        }
        panic!("could not size the viewport to {width}x{height}; it stays {seen}");
    }

    /// The first element matching `css`, waiting up to the session's default timeout for it.
    #[track_caller]
    pub(crate) fn find(&self, css: &str) -> Element<'_> {
        self.find_within(None, css, self.timeout)
    }

    /// The first element matching `css`, waiting up to `timeout`.
    #[track_caller]
    pub(crate) fn find_timeout(&self, css: &str, timeout: Duration) -> Element<'_> {
        self.find_within(None, css, timeout)
    }

    /// The first element matching `css` now, without waiting.
    #[track_caller]
    pub(crate) fn try_find(&self, css: &str) -> Option<Element<'_>> {
        self.lookup(None, css)
    }

    /// Every element matching `css` now (possibly none), without waiting.
    #[track_caller]
    pub(crate) fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self.cmd(Method::POST, "elements", Some(by_css(css)));
        self.elements(found)
    }

    /// Polls `ready` until it holds; panics naming `what` after `timeout`.
    #[track_caller]
    pub(crate) fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !ready() {
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what} (at {})",
                    self.current_url()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Waits until an element matching `css` exists and its rendered text contains `needle`.
    #[track_caller]
    pub(crate) fn wait_text(&self, css: &str, needle: &str, timeout: Duration) -> Element<'_> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(element) = self.lookup(None, css) {
                // The element may be replaced between lookup and read; that is another poll.
                match element.try_text() {
                    Ok(text) if text.contains(needle) => return element,
                    Ok(text) => last = Some(text),
                    Err(err) if err.is_transient() => {}
                    Err(err) => self.fail(Method::GET, &element.path("text"), &err),
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for `{css}` to contain {needle:?} \
                     (at {}); its text was {}",
                    self.current_url(),
                    last.map_or_else(
                        || "never found: no such element".to_owned(),
                        |t| format!("{t:?}")
                    )
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Runs `script` as a function body with `args` as `arguments`; returns what it returns.
    #[track_caller]
    pub(crate) fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.cmd(
            Method::POST,
            "execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Like [`Self::execute`], but the result is what the script passes to its last argument, the
    /// callback `arguments[arguments.length - 1]` (bounded by the session's 30 s script timeout).
    #[track_caller]
    pub(crate) fn execute_async(&self, script: &str, args: &[Value]) -> Value {
        self.cmd(
            Method::POST,
            "execute/async",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The viewport as a PNG.
    #[track_caller]
    pub(crate) fn screenshot_png(&self) -> Vec<u8> {
        let encoded = string(self.cmd(Method::GET, "screenshot", None));
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .unwrap_or_else(|err| panic!("WebDriver GET screenshot: not base64: {err}"))
    }

    /// Writes [`Self::screenshot_png`] to `path`, creating its directory.
    #[track_caller]
    pub(crate) fn save_screenshot(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|err| panic!("creating {}: {err}", dir.display()));
        }
        std::fs::write(path, self.screenshot_png())
            .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
    }

    /// Types `keys` into whatever has focus, as a keyboard would (WebDriver actions): each key is
    /// pressed and released in turn, except that Shift, Control, Alt and Meta stay down until
    /// [`keys::NULL`] or the end, so `SHIFT + TAB` moves focus backwards.
    #[track_caller]
    pub(crate) fn send_keys_active(&self, keys: &str) {
        let mut actions = Vec::new();
        let mut held: Vec<char> = Vec::new();
        for key in keys.chars() {
            if key == '\u{E000}' {
                for modifier in held.drain(..).rev() {
                    actions.push(json!({"type": "keyUp", "value": modifier.to_string()}));
                }
            } else if is_modifier(key) {
                actions.push(json!({"type": "keyDown", "value": key.to_string()}));
                held.push(key);
            } else {
                actions.push(json!({"type": "keyDown", "value": key.to_string()}));
                actions.push(json!({"type": "keyUp", "value": key.to_string()}));
            }
        }
        for modifier in held.drain(..).rev() {
            actions.push(json!({"type": "keyUp", "value": modifier.to_string()}));
        }
        self.cmd(
            Method::POST,
            "actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
        // Forget the input state so a later call starts with nothing pressed.
        self.cmd(Method::DELETE, "actions", None);
    }

    /// The focused element (`document.activeElement`, the body when nothing has focus).
    #[track_caller]
    pub(crate) fn active_element(&self) -> Element<'_> {
        let value = self.cmd(Method::GET, "element/active", None);
        self.element(&value)
    }

    /// The cookies visible to the current page, as WebDriver serializes them (`name`, `value`,
    /// `path`, `domain`, `secure`, `httpOnly`, `sameSite`, optionally `expiry`).
    #[track_caller]
    pub(crate) fn cookies(&self) -> Vec<Value> {
        match self.cmd(Method::GET, "cookie", None) {
            Value::Array(cookies) => cookies,
            other => panic!("WebDriver GET cookie: expected an array, got {other}"),
        }
    }

    /// Runs axe-core on the current page; panics when a violation is serious or critical, listing
    /// each with its rule, help text and first few offending selectors. Returns the remaining
    /// (minor and moderate) violations, axe's JSON as is, for the caller to print. `page` names
    /// the page in the panic message.
    #[track_caller]
    pub(crate) fn axe(&self, page: &str) -> Vec<Value> {
        // A navigation drops the injected script, so check per call rather than per session.
        let present = self.execute("return typeof window.axe === 'object';", &[]);
        if present != Value::Bool(true) {
            self.execute(axe_source(), &[]);
        }
        if !self.javascript {
            // With page scripts off, Chromium never fires timer callbacks, even for WebDriver's
            // scripts, and axe yields through setTimeout; promise jobs still run, so timers
            // become promise jobs. No page script is there to notice.
            self.execute(
                "window.setTimeout = (f, _ms, ...args) => {
                   Promise.resolve().then(() => f(...args));
                   return 0;
                 };
                 window.clearTimeout = () => {};",
                &[],
            );
        }
        let outcome = self.execute_async(
            "const done = arguments[arguments.length - 1];
             window.axe.run(document, {resultTypes: ['violations']})
               .then(r => done({violations: r.violations}), e => done({error: String(e)}));",
            &[],
        );
        if let Some(error) = outcome.get("error") {
            panic!("axe-core failed on {page}: {error}");
        }
        let violations = match outcome.get("violations") {
            Some(Value::Array(violations)) => violations.clone(),
            _ => panic!("axe-core on {page}: unexpected result {outcome}"),
        };
        let (blocking, rest): (Vec<Value>, Vec<Value>) = violations
            .into_iter()
            .partition(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")));
        if !blocking.is_empty() {
            let mut report = format!(
                "axe-core found {} serious or critical accessibility violation(s) on {page}:",
                blocking.len()
            );
            for violation in &blocking {
                let _ = write!(
                    report,
                    "\n- {} ({}): {}",
                    violation["id"].as_str().unwrap_or("?"),
                    violation["impact"].as_str().unwrap_or("?"),
                    violation["help"].as_str().unwrap_or("?"),
                );
                let nodes = violation["nodes"].as_array().map_or(&[][..], Vec::as_slice);
                for node in nodes.iter().take(3) {
                    let _ = write!(report, "\n    at {}", target(&node["target"]));
                }
                if nodes.len() > 3 {
                    let _ = write!(report, "\n    ... and {} more", nodes.len() - 3);
                }
            }
            panic!("{report}");
        }
        rest
    }

    fn find_within(&self, parent: Option<&str>, css: &str, timeout: Duration) -> Element<'_> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.lookup(parent, css) {
                return element;
            }
            if Instant::now() >= deadline {
                let scope = parent.map_or("", |_| " inside its parent element");
                panic!(
                    "timed out after {timeout:?} waiting for an element matching `{css}`{scope} \
                     (at {})",
                    self.current_url()
                );
            }
            thread::sleep(POLL);
        }
    }

    fn lookup(&self, parent: Option<&str>, css: &str) -> Option<Element<'_>> {
        let path = match parent {
            Some(id) => format!("element/{id}/element"),
            None => "element".to_owned(),
        };
        match self.call(Method::POST, &path, Some(by_css(css))) {
            Ok(value) => Some(self.element(&value)),
            Err(err) if err.code() == "no such element" => None,
            Err(err) => self.fail(Method::POST, &path, &err),
        }
    }

    fn element(&self, value: &Value) -> Element<'_> {
        let id = value[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("WebDriver: not an element reference: {value}"));
        Element {
            browser: self,
            id: id.to_owned(),
        }
    }

    fn elements(&self, value: Value) -> Vec<Element<'_>> {
        match value {
            Value::Array(found) => found.iter().map(|v| self.element(v)).collect(),
            other => panic!("WebDriver: expected a list of elements, got {other}"),
        }
    }

    /// A session command that must succeed.
    #[track_caller]
    fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.call(method.clone(), path, body)
            .unwrap_or_else(|err| self.fail(method, path, &err))
    }

    /// A session command (`path` relative to `/session/{id}/`).
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let path = format!("/session/{}/{path}", self.session);
        self.rt
            .block_on(send(
                &self.http,
                &self.base,
                method.clone(),
                &path,
                body,
                None,
            ))
            .unwrap_or_else(|err| {
                panic!(
                    "WebDriver {method} {path}: no answer from chromedriver: {err}\n\
                     --- chromedriver log\n{}",
                    self.driver.log()
                )
            })
    }

    #[track_caller]
    fn fail(&self, method: Method, path: &str, err: &WdError) -> ! {
        panic!(
            "WebDriver {method} /session/{}/{path} failed ({}): {}",
            self.session, err.status, err.json
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Quitting through the driver lets Chromium shut down cleanly; the daemon's drop then
        // stops the driver's process group, taking anything left over with it.
        let path = format!("/session/{}", self.session);
        let _ = self.rt.block_on(send(
            &self.http,
            &self.base,
            Method::DELETE,
            &path,
            None,
            Some(Duration::from_secs(15)),
        ));
    }
}

/// An element of the page a [`Browser`] shows; a reference that goes stale when the DOM node
/// is removed (find it again then).
pub(crate) struct Element<'b> {
    browser: &'b Browser,
    id: String,
}

impl<'b> Element<'b> {
    /// Scrolls the element into view and clicks its centre, as a user would (fails if something
    /// covers it).
    #[track_caller]
    pub(crate) fn click(&self) {
        self.cmd(Method::POST, "click", Some(json!({})));
    }

    /// Focuses the element and types `text` (which may contain [`keys`]).
    #[track_caller]
    pub(crate) fn send_keys(&self, text: &str) {
        self.cmd(Method::POST, "value", Some(json!({ "text": text })));
    }

    #[track_caller]
    pub(crate) fn clear(&self) {
        self.cmd(Method::POST, "clear", Some(json!({})));
    }

    /// The rendered text (as `innerText`: hidden parts left out).
    #[track_caller]
    pub(crate) fn text(&self) -> String {
        self.try_text()
            .unwrap_or_else(|err| self.browser.fail(Method::GET, &self.path("text"), &err))
    }

    /// The HTML attribute as written (`None` when absent).
    #[track_caller]
    pub(crate) fn attr(&self, name: &str) -> Option<String> {
        match self.cmd(Method::GET, &format!("attribute/{name}"), None) {
            Value::Null => None,
            Value::String(value) => Some(value),
            other => Some(other.to_string()),
        }
    }

    /// The DOM property (`value`, `checked`, ...), as it is now.
    #[track_caller]
    pub(crate) fn prop(&self, name: &str) -> Value {
        self.cmd(Method::GET, &format!("property/{name}"), None)
    }

    #[track_caller]
    pub(crate) fn is_displayed(&self) -> bool {
        self.cmd(Method::GET, "displayed", None) == Value::Bool(true)
    }

    /// The lower-case tag name.
    #[track_caller]
    pub(crate) fn tag(&self) -> String {
        string(self.cmd(Method::GET, "name", None)).to_lowercase()
    }

    /// The first descendant matching `css`, waiting up to the session's default timeout.
    #[track_caller]
    pub(crate) fn find(&self, css: &str) -> Element<'b> {
        self.browser
            .find_within(Some(&self.id), css, self.browser.timeout)
    }

    /// The first descendant matching `css` now, without waiting.
    #[track_caller]
    pub(crate) fn try_find(&self, css: &str) -> Option<Element<'b>> {
        self.browser.lookup(Some(&self.id), css)
    }

    /// Every descendant matching `css` now.
    #[track_caller]
    pub(crate) fn find_all(&self, css: &str) -> Vec<Element<'b>> {
        let found = self.cmd(Method::POST, "elements", Some(by_css(css)));
        self.browser.elements(found)
    }

    /// The element as a script argument for [`Browser::execute`] (`arguments[i]` is the node).
    pub(crate) fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    fn try_text(&self) -> Result<String, WdError> {
        self.browser
            .call(Method::GET, &self.path("text"), None)
            .map(string)
    }

    fn path(&self, what: &str) -> String {
        format!("element/{}/{what}", self.id)
    }

    #[track_caller]
    fn cmd(&self, method: Method, what: &str, body: Option<Value>) -> Value {
        self.browser.cmd(method, &self.path(what), body)
    }
}

/// `$var` if set, else `default`; it must exist, since nothing here can install it (that takes
/// apt-get, see scripts/install-browser.sh).
fn tool(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} (${var}) does not exist; run `bash scripts/install-browser.sh` (or scripts/setup.sh) \
         to install Chromium and ChromeDriver",
        path.display()
    );
    path
}

/// axe-core's script, read once per test process: `$OTAAS_AXE_JS`, else the tools dir's copy.
fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = std::env::var_os("OTAAS_AXE_JS").map_or_else(
            || {
                std::env::var_os("OTAAS_TOOLS_DIR")
                    .map_or_else(
                        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"),
                        PathBuf::from,
                    )
                    .join("axe/node_modules/axe-core/axe.min.js")
            },
            PathBuf::from,
        );
        std::fs::read_to_string(&path).unwrap_or_else(|err| {
            panic!(
                "reading axe-core from {} ($OTAAS_AXE_JS): {err}; run `bash \
                 scripts/install-browser.sh` to install it",
                path.display()
            )
        })
    })
}

/// A loopback port nobody listens on right now. The driver binds it a moment later; another
/// process taking it in between is possible but would show as a clear start-up failure.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// Polls `GET /status` until the driver says it is ready.
fn wait_ready(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    base: &str,
    driver: &mut Daemon,
) {
    let deadline = Instant::now() + DRIVER_START;
    loop {
        driver.assert_running();
        let status = rt.block_on(send(
            http,
            base,
            Method::GET,
            "/status",
            None,
            Some(Duration::from_secs(2)),
        ));
        if let Ok(Ok(value)) = &status
            && value["ready"] == Value::Bool(true)
        {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {DRIVER_START:?} waiting for chromedriver at {base} to be ready \
                 (last status: {status:?})\n--- chromedriver log\n{}",
                driver.log()
            );
        }
        thread::sleep(POLL);
    }
}

/// One WebDriver exchange. The outer error is the transport (no answer); the inner one is an
/// error the driver answered with. Success yields the response's `value`.
async fn send(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    timeout: Option<Duration>,
) -> Result<Result<Value, WdError>, reqwest::Error> {
    let mut request = http.request(method, format!("{base}{path}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
    }
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let mut json: Value = serde_json::from_slice(&bytes).unwrap_or_else(
        |_| json!({"error": "unparsable response", "body": String::from_utf8_lossy(&bytes)}),
    );
    let value = json
        .get_mut("value")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let failed = !status.is_success() || value.get("error").is_some_and(Value::is_string);
    Ok(if failed {
        Err(WdError {
            status: status.as_u16(),
            json: if value.is_null() { json } else { value },
        })
    } else {
        Ok(value)
    })
}

/// axe's node target: one selector, or a chain of them into iframes and shadow roots.
fn target(selectors: &Value) -> String {
    match selectors {
        Value::Array(chain) if chain.iter().all(Value::is_string) => chain
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" >>> "),
        other => other.to_string(),
    }
}

fn dimension(value: &Value) -> i64 {
    value
        .as_f64()
        .map(|v| v.round() as i64)
        .unwrap_or_else(|| panic!("WebDriver: expected a number, got {value}"))
}

fn by_css(css: &str) -> Value {
    json!({"using": "css selector", "value": css})
}

fn string(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => panic!("WebDriver: expected a string, got {other}"),
    }
}

fn is_modifier(key: char) -> bool {
    matches!(
        key,
        '\u{E008}'
            | '\u{E009}'
            | '\u{E00A}'
            | '\u{E03D}'
            | '\u{E050}'
            | '\u{E051}'
            | '\u{E052}'
            | '\u{E053}'
    )
}
