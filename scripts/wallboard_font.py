"""Make streams/kafka/web/wallboard-font.ttf: the glyphs the wallboard and the HTML report show
(their Korean text, KS S 1006's clause numbers, printable ASCII), from NanumGothic (Debian's
fonts-nanum), so both render Korean on a machine without Korean fonts and without fetching
anything.

NanumGothic is under the SIL Open Font License 1.1, whose Reserved Font Names a modified
version may not carry: the subset is renamed "CC Wallboard Sans". Needs fontTools (a
development tool, not a dependency): in the dev extra; run it again after
changing the page's text.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "streams" / "kafka" / "web"
SOURCE = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")
NAME = "CC Wallboard Sans"


def main() -> int:
    sources = [WEB / "wallboard.html", ROOT / "kpis" / "scorecard.py",
               ROOT / "cc_monitor" / "html.py", ROOT / "cc_monitor" / "render.py"]  # fmt: skip
    chars = {c for path in sources for c in path.read_text(encoding="utf-8") if ord(c) > 126}
    text = "".join(sorted(chars)) + "".join(map(chr, range(32, 127)))
    opts = subset.Options()
    opts.layout_features = ["*"]
    opts.hinting = False
    opts.desubroutinize = True
    font = TTFont(str(SOURCE))
    sub = subset.Subsetter(opts)
    sub.populate(text=text)
    sub.subset(font)
    for record in font["name"].names:  # OFL: no Reserved Font Name on a modified version
        if record.nameID in (1, 3, 4, 6, 16, 17, 21):
            value = NAME.replace(" ", "") if record.nameID == 6 else NAME
            record.string = value.encode(record.getEncoding() or "utf-16-be")
    for tag in [t for t in font.keys() if t.startswith("TSI")]:  # noqa: SIM118 (a TTFont)
        del font[tag]
    font.save(str(WEB / "wallboard-font.ttf"))
    print(f"{len(text)} characters -> {WEB / 'wallboard-font.ttf'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
