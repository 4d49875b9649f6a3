"""`make site`: render the executed run (default runs/tiny) into _site/, then open every page in headless Chromium.

usage: python scripts/make_site.py [--run runs/tiny] [--out _site] [--no-check]"""
import argparse, sys

from phi1_nb.site import build_site, check_site


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="make site", description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/tiny", help="an executed run folder (make demo writes runs/tiny)")
    p.add_argument("--out", default="_site", help="the site folder (replaced)")
    p.add_argument("--no-check", action="store_true", help="skip the headless-Chromium check of every page")
    a = p.parse_args(argv)
    try: site = build_site(a.run, a.out)
    except FileNotFoundError as e:
        print(f"make site: error: {e}", file=sys.stderr); return 2
    print(f"site: {site}/index.html")
    if a.no_check: return 0
    try: problems = check_site(site, a.run)
    except FileNotFoundError as e:
        print(f"make site: {e}; the site is built but was not checked in a browser", file=sys.stderr); return 0
    bad = {k: v for k, v in problems.items() if v}
    for page, v in problems.items(): print(f"  {page:<28} {'; '.join(v) if v else 'ok'}")
    print(f"checked {len(problems)} pages in headless Chromium; screenshots in {a.run}/site_screenshots/")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
