"""The console in a real browser: Debian's Chromium driven by Playwright, presenting members'
client certificates to a hub the calling test started and filled (tests/api/console.rs).

    python browser.py --port PORT --tls-dir DIR --shots DIR reconciliation --period 2025-03 \
        --officer DOICT.lan --bad-csv BAD --good-csv GOOD --script-household CODE
    python browser.py --port PORT --tls-dir DIR --shots DIR devices --decision NUMBER

Exits 0 when every scenario holds, 1 naming the first that did not. Each scenario saves a
screenshot in --shots for review. Needs NODE_EXTRA_CA_CERTS set to the hub's CA (Playwright's
own TLS layer presents the certificates) and Chromium at /usr/bin/chromium (or $CHROMIUM).
"""

import argparse
import os
import sys
import tempfile

from playwright.sync_api import Error, sync_playwright

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-dir", required=True)
    parser.add_argument("--shots", required=True)
    scenarios = parser.add_subparsers(dest="scenario", required=True)
    reconciliation = scenarios.add_parser("reconciliation")
    reconciliation.add_argument("--period", required=True)
    reconciliation.add_argument("--bad-csv", required=True, help="a household list with a bad citizen ID")
    reconciliation.add_argument("--good-csv", required=True, help="the same list put right")
    reconciliation.add_argument(
        "--officer", required=True, help="a DoICT officer's certificate (CODE.LOGIN), presented from its PKCS#12 file"
    )
    reconciliation.add_argument("--officer-name", required=True, help="the name the officer's certificate gives")
    reconciliation.add_argument(
        "--script-household", required=True, help="a household whose address holds a <script> element"
    )
    scenarios.add_parser("devices").add_argument("--decision", required=True)
    generated = scenarios.add_parser("generated")
    generated.add_argument("--period", required=True)
    generated.add_argument("--officer", required=True)
    generated.add_argument("--code", required=True, help="a discrepancy code some of the list's lines have")
    args = parser.parse_args()
    origin = f"https://localhost:{args.port}"
    os.makedirs(args.shots, exist_ok=True)

    def certificate(org):
        clients = os.path.join(args.tls_dir, "clients")
        if "." in org:
            # A person's certificate, as a browser imports it: the PKCS#12 file `telesub pki
            # init` wrote, opened with its password.
            with open(os.path.join(clients, f"{org}.p12.password")) as f:
                passphrase = f.read().strip()
            return [{"origin": origin, "pfxPath": os.path.join(clients, f"{org}.p12"), "passphrase": passphrase}]
        return [{
            "origin": origin,
            "certPath": os.path.join(clients, f"{org}.crt"),
            "keyPath": os.path.join(clients, f"{org}.key"),
        }]

    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), headless=True, args=ARGS
        )

        def page_of(org):
            context = browser.new_context(client_certificates=certificate(org) if org else [], locale="vi-VN")
            return context.new_page()

        if args.scenario == "devices":
            devices(args, origin, page_of)
            browser.close()
            print(f"console browser scenarios (devices) passed; screenshots in {args.shots}")
            return
        if args.scenario == "generated":
            generated_month(args, origin, page_of)
            browser.close()
            print(f"console browser scenario (a generated month) passed; screenshots in {args.shots}")
            return

        month = f"{origin}/console/reconciliation?period={args.period}"
        shown = "/".join(reversed(args.period.split("-")))

        # A DoICT officer, with her own certificate, reads every operator's list of the month.
        page = page_of(args.officer)
        response = page.goto(month)
        check(response.status == 200, f"DOICT: status {response.status}: {page.content()[:500]}")
        text = page.inner_text("main")
        check(f"Đối soát tháng {shown}" in text, f"DOICT: no heading for {shown}: {text[:500]}")
        for expected in ["VNPT", "vn-2025-03", "VIETTEL", "vt-2025-03", "180.000 ₫", "120.000 ₫"]:
            check(expected in text, f"DOICT: {expected!r} is not on the page")
        check(page.locator("script").count() == 0, "DOICT: the page carries a script")
        page.screenshot(path=os.path.join(args.shots, "reconciliation-doict.png"), full_page=True)
        # VNPT's list, by its link: filtered by a code, then its OK lines confirmed.
        page.click("text=vn-2025-03")
        check("Danh sách vn-2025-03 của VNPT" in page.inner_text("h1"), "DOICT: the list did not open")
        check(args.officer_name in page.inner_text("header"), f"DOICT: the page does not greet {args.officer_name}")
        page.select_option("select#code", "ELIGIBILITY_ENDED")
        page.click("form.filter button")
        text = page.inner_text("table.lines")
        check("HH-3" in text and "0912000001" not in text, f"DOICT: the filter by code showed {text[:500]}")
        page.screenshot(path=os.path.join(args.shots, "list-filtered-doict.png"), full_page=True)
        # The line, with the household's states on the days that matter; then back to the list.
        page.click("table.lines a >> text=2")
        text = page.inner_text("main")
        check("Dòng 2 của danh sách vn-2025-03" in text, f"DOICT: the line did not open: {text[:500]}")
        check("Quá trình của hộ HH-3" in text and "31/03/2025" in text, f"DOICT: the line's history: {text[:800]}")
        page.screenshot(path=os.path.join(args.shots, "line-doict.png"), full_page=True)
        page.click("text=← Danh sách vn-2025-03")
        page.click("text=Xác nhận >> nth=-1")
        check(page.locator("table.summary").count() == 1, f"DOICT: after confirming: {page.inner_text('main')[:800]}")
        check("Đã xác nhận" in page.inner_text("table.summary"), "DOICT: the list is not shown confirmed")
        check(args.officer_name in page.inner_text("table.summary"), "DOICT: the confirmation does not name the officer")
        check(page.locator("input[name=csrf]").count() == 0, "DOICT: a confirmed list still offers its forms")
        page.screenshot(path=os.path.join(args.shots, "list-confirmed-doict.png"), full_page=True)
        # The header's switch: the same page in English, then in Vietnamese again.
        page.click("header a.lang")
        check("List vn-2025-03 of VNPT" in page.inner_text("h1"), f"DOICT: no English page: {page.inner_text('h1')}")
        check(page.locator("html[lang=en]").count() == 1, "DOICT: the English page is not marked lang=en")
        page.screenshot(path=os.path.join(args.shots, "list-confirmed-doict-english.png"), full_page=True)
        page.click("header a.lang")
        check("Danh sách vn-2025-03" in page.inner_text("h1"), f"DOICT: not back in Vietnamese: {page.inner_text('h1')}")
        # The month's figures, with their chart.
        response = page.goto(f"{origin}/console/statistics?period={args.period}")
        check(response.status == 200, f"DOICT: statistics status {response.status}")
        check(page.locator("svg.chart rect").count() >= 2, "DOICT: the statistics have no chart")
        page.screenshot(path=os.path.join(args.shots, "statistics-doict.png"), full_page=True)
        # The month before, by its link on the month's page.
        page.goto(month)
        page.click("text=← ")
        check("Đối soát tháng" in page.inner_text("h1"), "DOICT: the month before did not open")

        # An operator sees its own list and not another's.
        page = page_of("VNPT")
        response = page.goto(month)
        check(response.status == 200, f"VNPT: status {response.status}")
        text = page.inner_text("main")
        check("vn-2025-03" in text and "VIETTEL" not in text, f"VNPT: saw {text[:500]}")
        page.screenshot(path=os.path.join(args.shots, "reconciliation-vnpt.png"), full_page=True)
        response = page.goto(f"{origin}/console/reconciliation/VIETTEL/vt-2025-03")
        check(response.status in (403, 404), f"VNPT: VIETTEL's list answered {response.status}")
        check("0981000004" not in page.content(), "VNPT: VIETTEL's list was shown")
        page.screenshot(path=os.path.join(args.shots, "list-of-another-refused-vnpt.png"), full_page=True)

        # The labour department may not read monthly lists.
        page = page_of("DOLISA")
        response = page.goto(month)
        check(response.status == 403, f"DOLISA: status {response.status}")
        check("vn-2025-03" not in page.content(), "DOLISA: a list was shown")
        page.screenshot(path=os.path.join(args.shots, "reconciliation-dolisa-refused.png"), full_page=True)

        # The labour department finds a household from the home page and reads its timeline.
        page.goto(f"{origin}/console/")
        page.click("text=Tra cứu hộ")
        page.fill("input#q", "HH-3")
        page.click("form.search button")
        text = page.inner_text("main")
        check("Hộ HH-3: quá trình" in text and "Ra khỏi danh sách" in text, f"DOLISA: timeline {text[:500]}")
        page.screenshot(path=os.path.join(args.shots, "household-dolisa.png"), full_page=True)

        # The labour department sends a household list: a bad one is refused with its field
        # named, the good one gives its receipt.
        page.goto(f"{origin}/console/batches/new")
        for csv, expected in [(args.bad_csv, "citizen_id"), (args.good_csv, "Biên nhận đợt console-1")]:
            page.goto(f"{origin}/console/batches/new")
            page.fill("input#batch_id", "console-1")
            page.fill("input#review_period", "2025-03")
            page.fill("input#effective_date", "2025-03-01")
            page.set_input_files("input#file", csv)
            page.click("form.upload button")
            text = page.inner_text("main")
            check(expected in text, f"DOLISA: after sending {csv}: {text[:600]}")
            if csv == args.bad_csv:
                # The bad list names its head `<script>…`: refused, and the name shown as text.
                check("<script>alert(1)</script>" in text, f"DOLISA: the typed name is not shown: {text[:600]}")
                check(page.locator("script").count() == 0, "DOLISA: a name became markup")
            name = "upload-refused-dolisa.png" if csv == args.bad_csv else "upload-receipt-dolisa.png"
            page.screenshot(path=os.path.join(args.shots, name), full_page=True)

        # A household whose address holds a script: shown as text.
        page.goto(f"{origin}/console/households?by=code&q={args.script_household}")
        check("<script>alert(1)</script>" in page.inner_text("main"), "DOLISA: the address is not shown as text")
        check(page.locator("script").count() == 0, "DOLISA: an address became markup")
        page.screenshot(path=os.path.join(args.shots, "household-script-as-text.png"), full_page=True)

        # What a caller typed is shown as text.
        page = page_of("DOICT")
        response = page.goto(f"{origin}/console/reconciliation?period=%3Cscript%3Ealert(1)%3C/script%3E")
        check(response.status == 400, f"typed script: status {response.status}")
        check("<script>alert(1)</script>" in page.inner_text("main"), "typed script: not shown as text")
        check(page.locator("script").count() == 0, "typed script: became markup")
        page.screenshot(path=os.path.join(args.shots, "bad-period.png"), full_page=True)

        # A browser without a certificate gets no page.
        page = page_of(None)
        try:
            response = page.goto(month)
            body = page.content()
            check(response is None or response.status != 200, f"no certificate: status {response.status}")
            check("vn-2025-03" not in body, "no certificate: a list was shown")
        except Error:
            pass
        browser.close()
    print(f"console browser scenarios passed; screenshots in {args.shots}")


def generated_month(args, origin, page_of):
    """A DoICT officer opens a generated month, filters a code, opens a line, goes back and
    confirms the list's OK lines."""
    page = page_of(args.officer)
    response = page.goto(f"{origin}/console/reconciliation?period={args.period}")
    check(response.status == 200, f"officer: month status {response.status}")
    page.click("text=bench")
    check("Danh sách bench của VNPT" in page.inner_text("h1"), "officer: the generated list did not open")
    page.select_option("select#code", args.code)
    page.click("form.filter button")
    rows = page.locator("table.lines tbody tr")
    check(rows.count() >= 1 and args.code in rows.first.inner_text(), f"officer: filtered by {args.code}: {rows.first.inner_text()}")
    page.screenshot(path=os.path.join(args.shots, "generated-filtered.png"), full_page=True)
    rows.first.locator("a").first.click()
    text = page.inner_text("main")
    check(args.code in text and "Những ngày cần xem" in text, f"officer: the line's page: {text[:600]}")
    page.screenshot(path=os.path.join(args.shots, "generated-line.png"), full_page=True)
    page.click("text=← Danh sách bench")
    page.click("text=Xác nhận >> nth=-1")
    check("Đã xác nhận" in page.inner_text("table.summary"), f"officer: after confirming: {page.inner_text('main')[:600]}")
    page.screenshot(path=os.path.join(args.shots, "generated-confirmed.png"), full_page=True)


def devices(args, origin, page_of):
    """The People's Committee approves the submitted list; Gia Nghĩa hands a phone over in its
    district and is refused one outside it."""
    from urllib.parse import quote

    decision = f"{origin}/console/devices/{quote(args.decision, safe='')}"
    page = page_of("UBND")
    response = page.goto(f"{origin}/console/devices")
    check(response.status == 200, f"UBND: devices status {response.status}")
    page.click(f"text={args.decision}")
    check("Đã trình UBND tỉnh" in page.inner_text("table.summary"), "UBND: the list is not shown submitted")
    page.fill("input#approval_number", "25/QĐ-UBND")
    page.click("text=Phê duyệt >> nth=-1")
    text = page.inner_text("table.summary")
    check("UBND tỉnh đã phê duyệt" in text and "25/QĐ-UBND" in text, f"UBND: after approving: {text[:500]}")
    page.screenshot(path=os.path.join(args.shots, "devices-approved-ubnd.png"), full_page=True)

    page = page_of("GIANGHIA")
    page.goto(decision)
    for household, imei, expected in [("M1", "350000000000014", True), ("Q1", "350000000000022", False)]:
        page.goto(decision)
        page.fill("input#household_code", household)
        page.fill("input#received_by", "Nguyễn Văn An")
        page.fill("input#imei", imei)
        with page.expect_navigation() as navigation:
            page.click("section.handover button")
        status = navigation.value.status if navigation.value else None
        if expected:
            check("Tiến độ theo đơn vị" in page.inner_text("main"), f"GIANGHIA: {household}: {page.inner_text('main')[:500]}")
        else:
            check(status in (403, 404), f"GIANGHIA: {household} outside its unit answered {status}")
    page.goto(decision)
    text = page.inner_text("table.progress")
    check("Thành phố Gia Nghĩa (660)\t6\t1" in text, f"GIANGHIA: progress {text[:500]}")
    page.screenshot(path=os.path.join(args.shots, "devices-handover-gianghia.png"), full_page=True)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"console browser scenario failed: {e}", file=sys.stderr)
        sys.exit(1)
