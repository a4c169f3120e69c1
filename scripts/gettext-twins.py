#!/usr/bin/env python3
"""Twinned training rows in the detector's 24 other languages, from software messages.

The grammar's rules for other languages are small, so without these rows the model learned
the language itself as a sign of an attack: it flagged 11.5% of ordinary software messages
in those languages and none in English. The gettext catalogues installed with the system's
packages (/usr/share/locale/<lang>/LC_MESSAGES/*.mo) hold thousands of translated messages
per language, full of "password", "administrator", "disable", "ignore", "override" in their
ordinary senses. Each row joins one to six of them (benign); half the time the same text
also gets one of the grammar's attack lines for that language inserted (attack), so the
language's words appear on both sides and only the attack's words mark an attack.

Nothing is downloaded. The output depends on the installed packages, so it is not committed
and another machine gives another file; the model manifest records its SHA-256.

    python3 scripts/gettext-twins.py --out target/gettext-twins.jsonl [--per-lang 300] [--seed 7]
"""

import argparse
import gettext
import glob
import json
import pathlib
import random
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
GRAMMAR = ROOT / "crates/guard/data/synth/grammar.txt"
# The grammar's language codes and the locale directories that hold them.
LANGS = {
    "fr": ["fr"], "de": ["de"], "es": ["es"], "it": ["it"], "pt": ["pt", "pt_BR"], "nl": ["nl"],
    "ru": ["ru"], "zh": ["zh_CN", "zh_TW"], "ja": ["ja"], "ko": ["ko"], "pl": ["pl"], "tr": ["tr"],
    "ar": ["ar"], "hi": ["hi"], "sv": ["sv"], "id": ["id"], "vi": ["vi"], "uk": ["uk"],
    "el": ["el"], "he": ["he"], "th": ["th"], "ro": ["ro"], "hu": ["hu"], "cs": ["cs"],
}
PLACEHOLDER = re.compile(r"\{(\^?)([a-z_0-9.]+)\}")
# printf and brace placeholders, keyboard accelerators and escaped newlines are not prose.
MARKUP = re.compile(r"%[-+ #0-9.]*[a-zA-Z]|\{[^}]*\}|_(?=\w)|&(?=\w)|\\n")


def read_grammar():
    rules, cur = {}, None
    for line in GRAMMAR.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        head = re.fullmatch(r"\[([a-z_0-9.]+)\]", line.strip())
        if head:
            cur = head.group(1)
            rules.setdefault(cur, [])
        elif cur:
            rules[cur].append(line[1:] if line.startswith("\\#") else line)
    return rules


def expand(rules, name, rng, depth=0):
    """Expands a rule like the Rust generator does; rules it does not know stay as written."""
    if name not in rules or depth > 8:
        return ""

    def sub(m):
        if m.group(2) not in rules:
            return m.group(0)
        v = expand(rules, m.group(2), rng, depth + 1)
        return v[:1].upper() + v[1:] if m.group(1) else v

    return PLACEHOLDER.sub(sub, rng.choice(rules[name])).replace("\\n", "\n")


def messages(dirs):
    found = set()
    for d in dirs:
        for mo in sorted(glob.glob(f"/usr/share/locale/{d}/LC_MESSAGES/*.mo")):
            try:
                with open(mo, "rb") as f:
                    catalog = gettext.GNUTranslations(f)._catalog
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            for msgid, text in catalog.items():
                if not isinstance(text, str) or not msgid or text == msgid:
                    continue
                text = re.sub(r"\s+", " ", MARKUP.sub("", text)).strip(" :\n\t")
                if 20 <= len(text) <= 300 and sum(c.isalpha() for c in text) > 0.6 * len(text):
                    found.add(text)
    return sorted(found)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-lang", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rules = read_grammar()
    rows = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for lang, dirs in LANGS.items():
            msgs = messages(dirs)
            if not msgs:
                print(f"no gettext catalogues for {lang}; skipped", file=sys.stderr)
                continue
            for _ in range(args.per_lang):
                parts = rng.sample(msgs, min(rng.choice([1, 2, 3, 4, 6]), len(msgs)))
                sep = " " if rng.random() < 0.5 else "\n"
                row = {"text": sep.join(parts), "label": 0, "source": f"gettext-{lang}"}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                rows += 1
                if rng.random() < 0.5:
                    attack = expand(rules, f"attack.{lang}", rng)
                    if attack:
                        parts.insert(rng.randrange(len(parts) + 1), attack)
                        row = {"text": sep.join(parts), "label": 1, "source": f"gettext-attack-{lang}"}
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
                        rows += 1
    print(f"{rows} rows -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
