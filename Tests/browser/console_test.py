#!/usr/bin/env python3
"""Drives the real console page in headless Chromium (Debian's chromium + chromium-driver,
PyPI's selenium) against a `lumen console` process over the simulated port.

Usage: console_test.py --lumen PATH/TO/lumen --out FOLDER
Screenshots go to FOLDER (one PNG per step); the server's audit log and output too.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ARGS = None
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "olga": "olga-password", "sam": "sam-password"}
ROLES = {"alice": "operator", "bob": "operator", "olga": "observer", "sam": "supervisor"}


class Server:
    """A `lumen console` on a free loopback port, with its own users file and audit log."""

    # A looser deadman than the default 150 ms: the browser's timers on a loaded CI machine
    # sometimes miss three 50 ms heartbeats in a row, which would (correctly) stop a jog midway.
    # The timeout itself is tested on a simulated clock (ConsoleGateTests).
    def __init__(self, name, extra_config="deadman_timeout_ms: 300\n"):
        self.dir = os.path.join(ARGS.out, name)
        os.makedirs(self.dir, exist_ok=True)
        self.users = os.path.join(self.dir, "users")
        self.audit = os.path.join(self.dir, "audit.log")
        for f in (self.users, self.audit):
            if os.path.exists(f):
                os.remove(f)
        for user, pw in PASSWORDS.items():
            subprocess.run([ARGS.lumen, "console", "add-user", "--users", self.users, "--name", user, "--role", ROLES[user]],
                           input=pw + "\n", text=True, check=True, capture_output=True)
        config = os.path.join(self.dir, "console.yaml")
        with open(config, "w") as f:
            f.write(extra_config)
        self.log = open(os.path.join(self.dir, "server.log"), "w+")
        self.proc = subprocess.Popen([ARGS.lumen, "console", "--system", "simulated", "--config", config, "--bind", "127.0.0.1:0", "--users", self.users,
                                      "--audit-log", self.audit], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        self.url = None
        while time.time() < deadline and self.url is None:
            time.sleep(0.2)
            self.log.seek(0)
            m = re.search(r"(http://127\.0\.0\.1:\d+)/", self.log.read())
            if m:
                self.url = m.group(1)
            if self.proc.poll() is not None:
                break
        if self.url is None:
            self.log.seek(0)
            raise RuntimeError("the console did not start: " + self.log.read())

    def audit_text(self):
        with open(self.audit) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = os.environ.get("LUMEN_CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1100", "--disable-dev-shm-usage"):
        o.add_argument(a)
    return webdriver.Chrome(service=Service(os.environ.get("LUMEN_CHROMEDRIVER", "/usr/bin/chromedriver")), options=o)


class ConsoleTest(unittest.TestCase):
    server = None
    short = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server("main")
        cls.drivers = []

    @classmethod
    def tearDownClass(cls):
        for d in cls.drivers:
            try:
                d.quit()
            except Exception:
                pass
        cls.server.stop()
        if cls.short:
            cls.short.stop()

    def setUp(self):
        # Each test starts from a robot without a latched stop, whatever the last one did.
        self.open_drivers = []

    def tearDown(self):
        for d in self.open_drivers:
            try:
                d.quit()
            except Exception:
                pass

    # ---- helpers ---------------------------------------------------------------------
    def page(self, server=None):
        d = browser()
        self.open_drivers.append(d)
        d.get((server or self.server).url + "/")
        return d

    def login(self, user, server=None):
        d = self.page(server)
        WebDriverWait(d, 20).until(lambda d: d.find_element(By.ID, "login-user").is_displayed())
        d.find_element(By.ID, "login-user").send_keys(user)
        d.find_element(By.ID, "login-password").send_keys(PASSWORDS[user])
        d.find_element(By.ID, "login-submit").click()
        WebDriverWait(d, 20).until(lambda d: d.find_element(By.ID, "conn").text == "connected")
        WebDriverWait(d, 20).until(lambda d: self.state(d) is not None)
        return d

    def state(self, d):
        return d.execute_script("return ui.state")

    def wait(self, d, cond, timeout=20, what="condition"):
        try:
            return WebDriverWait(d, timeout, poll_frequency=0.05).until(lambda d: cond(d))
        except TimeoutException:
            self.fail(f"timed out waiting for {what}; state: {json.dumps(self.state(d))[:600]}")

    def shot(self, d, name):
        path = os.path.join(ARGS.out, name + ".png")
        d.save_screenshot(path)
        return path

    def take_lease(self, d):
        d.find_element(By.ID, "lease-take").click()
        self.wait(d, lambda d: self.state(d)["console"]["holdsLease"], what="the lease")

    def insertion(self, d):
        return self.state(d)["axes"][0]["position"]

    def messages(self, d):
        return d.find_element(By.ID, "messages").text

    def clear_stop(self, d):
        s = self.state(d)
        if s["safety"].get("stopCategory") is not None:
            # Acknowledging is a control action: it needs the lease.
            if not s["console"]["holdsLease"]:
                self.take_lease(d)
            d.find_element(By.ID, "ack").click()
            self.wait(d, lambda d: self.state(d)["safety"].get("stopCategory") is None, what="acknowledged")

    # ---- tests -----------------------------------------------------------------------
    def test_01_wrong_password_is_refused(self):
        d = self.page()
        WebDriverWait(d, 20).until(lambda d: d.find_element(By.ID, "login-user").is_displayed())
        d.find_element(By.ID, "login-user").send_keys("alice")
        d.find_element(By.ID, "login-password").send_keys("not-the-password")
        d.find_element(By.ID, "login-submit").click()
        self.wait(d, lambda d: "wrong user name or password" in d.find_element(By.ID, "login-error").text, what="the login error")
        self.shot(d, "01-login-refused")
        self.assertFalse(d.find_element(By.ID, "app").is_displayed())

    def test_02_hold_and_jog_moves_the_tip_release_stops(self):
        d = self.login("alice")
        self.clear_stop(d)
        self.take_lease(d)
        self.shot(d, "02a-lease-taken")
        start = self.insertion(d)
        tip0 = self.state(d)["estimate"]
        a = ActionChains(d)
        a.key_down(Keys.SPACE).click_and_hold(d.find_element(By.ID, "jog-0-plus")).perform()
        self.wait(d, lambda d: self.insertion(d) > start + 10, what="insertion to advance while held")
        self.assertEqual(self.state(d)["mode"], "jog")
        self.shot(d, "02b-jogging")
        ActionChains(d).release().key_up(Keys.SPACE).perform()
        self.wait(d, lambda d: self.state(d)["mode"] == "hold", timeout=2, what="hold after release")
        time.sleep(0.3)
        stopped = self.insertion(d)
        time.sleep(0.7)
        self.assertAlmostEqual(self.insertion(d), stopped, places=6, msg="motion continued after release")
        tip1 = self.state(d)["estimate"]
        self.assertGreater(tip1[1] - tip0[1], 10, "the tip moved along the vessel")
        self.shot(d, "02c-released")

    def test_03_click_target_and_navigate_while_held(self):
        d = self.login("alice")
        self.clear_stop(d)
        self.take_lease(d)
        # The right branch's target, projected on the AP plane, clicked where the page shows it.
        px = d.execute_script("const t = ui.hello.targets[1].position; return project(ui.hello.planes[0], t);")
        canvas = d.find_element(By.ID, "plane-0")
        scale = canvas.size["width"] / 256
        ActionChains(d).move_to_element_with_offset(canvas, (px[0] - 128) * scale, (px[1] - 128) * scale).click().perform()
        self.wait(d, lambda d: self.state(d).get("target") is not None, what="the target")
        target = self.state(d).get("target")
        before = self.state(d)["estimate"]
        time.sleep(0.5)
        self.assertEqual(self.state(d)["estimate"], before, "nothing moves before the deadman is held")
        ActionChains(d).key_down(Keys.SPACE).perform()
        self.wait(d, lambda d: self.state(d)["mode"] == "tip servo", timeout=3, what="tip servo")
        time.sleep(2)
        self.shot(d, "03a-navigating")
        self.wait(d, lambda d: self.state(d).get("target") is None, timeout=60, what="arrival at the target")
        ActionChains(d).key_up(Keys.SPACE).perform()
        tip = self.state(d)["estimate"]
        dist = sum((a - b) ** 2 for a, b in zip(tip, target)) ** 0.5
        self.assertLess(dist, 3, f"tip {tip} target {target}")
        time.sleep(0.3)
        self.shot(d, "03b-arrived-in-branch")

    def test_03b_clutch_drag_moves_the_tip_by_the_hand(self):
        d = self.login("alice")
        self.clear_stop(d)
        self.take_lease(d)
        d.find_element(By.ID, "clutch").click()
        canvas = d.find_element(By.ID, "plane-0")
        px_per_css = 256 / canvas.size["width"]
        before = self.state(d)["estimate"]
        a = ActionChains(d)
        a.key_down(Keys.SPACE).move_to_element(canvas).click_and_hold()
        # 20 image px to the right: 10 mm of hand motion in x at 0.5 mm/px, 5 mm of tip motion at
        # the page's default motion scaling of 0.5.
        for _ in range(10):
            a.move_by_offset(2 / px_per_css, 0).pause(0.05)
        a.pause(3).perform()
        after = self.state(d)["estimate"]
        ActionChains(d).release().key_up(Keys.SPACE).perform()
        d.find_element(By.ID, "clutch").click()
        self.shot(d, "03c-clutch-drag")
        self.assertAlmostEqual(after[0] - before[0], 5, delta=1, msg=f"{before} -> {after}")
        self.assertAlmostEqual(after[1], before[1], delta=1)

    def test_04_stop_button_latches_category_1(self):
        d = self.login("alice")
        self.clear_stop(d)
        d.find_element(By.ID, "stop").click()
        self.wait(d, lambda d: self.state(d)["safety"].get("stopCategory") == 1, timeout=3, what="category 1")
        self.wait(d, lambda d: d.find_element(By.ID, "stop-category").text == "category 1", timeout=3, what="shown")
        self.assertTrue(self.state(d)["safety"]["faults"])
        self.shot(d, "04a-stopped")
        # Escape stops too, and a jog is refused while latched.
        self.clear_stop(d)
        ActionChains(d).send_keys(Keys.ESCAPE).perform()
        self.wait(d, lambda d: self.state(d)["safety"].get("stopCategory") == 1, timeout=3, what="keyboard stop")
        self.clear_stop(d)
        self.shot(d, "04b-acknowledged")

    def test_05_observer_jog_is_refused_and_shown_but_stop_works(self):
        d = self.login("olga")
        self.assertFalse(d.find_element(By.ID, "lease-take").is_enabled())
        ActionChains(d).key_down(Keys.SPACE).click_and_hold(d.find_element(By.ID, "jog-0-plus")).pause(0.5).release().key_up(Keys.SPACE).perform()
        self.wait(d, lambda d: "an observer may only view and stop" in self.messages(d), timeout=3, what="the refusal")
        self.shot(d, "05a-observer-refused")
        d.find_element(By.ID, "stop").click()
        self.wait(d, lambda d: self.state(d)["safety"].get("stopCategory") == 1, timeout=3, what="the observer's stop")
        self.shot(d, "05b-observer-stopped")
        a = self.login("alice")
        self.clear_stop(a)

    def test_06_second_operator_needs_override(self):
        a = self.login("alice")
        self.take_lease(a)
        b = self.login("bob")
        b.find_element(By.ID, "lease-take").click()
        self.wait(b, lambda d: "alice holds the lease" in self.messages(d), timeout=3, what="the refusal")
        self.assertFalse(self.state(b)["console"]["holdsLease"])
        self.shot(b, "06a-second-operator-refused")
        s = self.login("sam")
        self.assertTrue(s.find_element(By.ID, "lease-override").is_displayed())
        s.execute_script("window.confirm = () => true")
        s.find_element(By.ID, "lease-override").click()
        self.wait(s, lambda d: self.state(d)["console"]["holdsLease"], timeout=3, what="the override")
        self.wait(a, lambda d: not self.state(d)["console"]["holdsLease"], timeout=3, what="alice losing the lease")
        self.shot(a, "06b-overridden")
        self.assertIn("lease override -> ok, taken from alice", self.server.audit_text())

    def test_07_forged_session_is_refused(self):
        d = self.page()
        d.add_cookie({"name": "lumen_session", "value": "0" * 64, "path": "/"})
        d.get(self.server.url + "/")
        WebDriverWait(d, 20).until(lambda d: d.find_element(By.ID, "login").is_displayed())
        opened = d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const ws = new WebSocket(`ws://${location.host}/ws`);
            ws.onopen = () => done("opened"); ws.onerror = () => done("refused"); ws.onclose = () => done("refused");""")
        self.assertEqual(opened, "refused")
        status = d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch('/api/me').then(r => done(r.status));""")
        self.assertEqual(status, 401)
        self.shot(d, "07-forged-session")
        # A WebSocket from another origin is refused even with a valid session.
        login = urllib.request.Request(self.server.url + "/api/login", method="POST",
                                       data=json.dumps({"user": "alice", "password": PASSWORDS["alice"]}).encode(),
                                       headers={"Origin": self.server.url, "Content-Type": "application/json"})
        cookie = urllib.request.urlopen(login, timeout=10).headers["Set-Cookie"].split(";")[0]
        with self.assertRaises(urllib.error.HTTPError):
            req = urllib.request.Request(self.server.url + "/ws", headers={
                "Cookie": cookie,
                "Origin": "http://evil.example", "Connection": "Upgrade", "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
            urllib.request.urlopen(req, timeout=5)
        audit = self.server.audit_text()
        self.assertIn("websocket -> refused: no valid session", audit)
        self.assertIn("websocket -> refused: origin http://evil.example", audit)

    def test_08_expired_session_is_refused(self):
        if ConsoleTest.short is None:
            ConsoleTest.short = Server("short-session", "session_minutes: 0.1\ndeadman_timeout_ms: 300\n")
        d = self.login("alice", ConsoleTest.short)
        self.wait(d, lambda d: d.find_element(By.ID, "conn").text == "disconnected", timeout=20, what="the expired session's socket to close")
        d.get(ConsoleTest.short.url + "/")
        WebDriverWait(d, 20).until(lambda d: d.find_element(By.ID, "login").is_displayed())
        self.shot(d, "08-expired-session")
        self.assertIn("session -> expired: connection closed", ConsoleTest.short.audit_text())

    def test_09_closing_the_tab_mid_jog_holds(self):
        watcher = self.login("olga")
        d = self.login("alice")
        self.clear_stop(d)
        self.take_lease(d)
        ActionChains(d).key_down(Keys.SPACE).click_and_hold(d.find_element(By.ID, "jog-0-minus")).perform()
        self.wait(watcher, lambda w: self.state(w)["mode"] == "jog", timeout=5, what="jog seen by the observer")
        self.shot(watcher, "09a-observer-sees-jog")
        d.quit()  # the tab (and its browser) goes away mid-jog
        self.open_drivers.remove(d)
        self.wait(watcher, lambda w: self.state(w)["mode"] == "hold", timeout=3, what="hold after the tab closed")
        time.sleep(0.3)
        x = self.insertion(watcher)
        time.sleep(0.7)
        self.assertAlmostEqual(self.insertion(watcher), x, places=6)
        self.shot(watcher, "09b-held-after-close")
        # Released by the closed socket or, if the heartbeats stopped first, by their gap.
        last = self.server.audit_text().strip().splitlines()
        releases = [l for l in last if "alice" in l and "deadman release" in l]
        self.assertTrue(releases and ("connection closed" in releases[-1] or "heartbeat gap" in releases[-1]), releases[-3:])


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--lumen", required=True)
    p.add_argument("--out", required=True)
    ARGS, rest = p.parse_known_args()
    os.makedirs(ARGS.out, exist_ok=True)
    r = unittest.main(argv=[sys.argv[0], "-v"] + rest, exit=False)
    sys.exit(0 if r.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
