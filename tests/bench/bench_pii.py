"""Personal-data detector: precision/recall on the labelled corpus plus generated cases, and throughput.

python tests/bench/bench_pii.py   → JSON on stdout
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from boothguard.session import pii
from tests.session.pii_corpus import FALSE_POSITIVES, TRUE_POSITIVES


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("2221", 16), ("34", 15), ("3528", 16), ("6011", 16)])
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return next(body + d for d in "0123456789" if pii.luhn_ok(body + d))


def _my_number(rng: random.Random) -> str:
    while True:
        body = "".join(rng.choice("0123456789") for _ in range(11))
        number = next(body + d for d in "0123456789" if pii.my_number_ok(body + d))
        if not pii._looks_like_timestamp(number):
            return number


def main() -> None:
    rng = random.Random(7)
    cases: list[tuple[str, dict[str, int]]] = list(TRUE_POSITIVES) + [(t, {}) for t in FALSE_POSITIVES]
    id_word_counted = 0
    for _ in range(500):
        cases.append((f"カード {_card(rng)}", {"credit_card": 1}))
        cases.append((f"個人番号 {_my_number(rng)}", {"my_number": 1}))
        cases.append(
            (
                f"携帯 0{rng.choice('789')}0-{rng.randrange(10**4):04d}-{rng.randrange(10**4):04d}",
                {"phone_jp": 1},
            )
        )
        # An id word excuses only digits that cannot be a card / My Number (issue 14): label by that rule.
        order, slip = str(rng.randrange(10**11, 10**12)), str(rng.randrange(10**15, 10**16))
        label = {"my_number": 1} if pii.my_number_ok(order) else {}
        if pii.luhn_ok(slip) and pii.card_issuer(slip) is not None:
            label["credit_card"] = 1
        id_word_counted += bool(label)
        cases.append((f"注文番号 {order} 伝票 {slip}", label))
        ts = (
            f"{rng.randrange(2000, 2030)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d} "
            f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
        )
        cases.append((f"log {ts} INV-{rng.randrange(10**6):06d}", {}))
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for text, expected in cases:
        got = pii.scan(text)
        for kind in pii.KINDS:
            e, g = expected.get(kind, 0), got.get(kind, 0)
            tp[kind] += min(e, g)
            fp[kind] += max(0, g - e)
            fn[kind] += max(0, e - g)
    per_kind = {
        k: {
            "precision": round(tp[k] / (tp[k] + fp[k]), 4) if tp[k] + fp[k] else None,
            "recall": round(tp[k] / (tp[k] + fn[k]), 4) if tp[k] + fn[k] else None,
            "tp": tp[k],
            "fp": fp[k],
            "fn": fn[k],
        }
        for k in pii.KINDS
    }
    all_tp, all_fp, all_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    # Bare random 12-digit numbers with no context: the check digit alone lets ~1 in 10 through.
    bare = [str(rng.randrange(10**11, 10**12)) for _ in range(2000)]
    bare_fp = sum("my_number" in pii.scan(b) for b in bare) / len(bare)
    line = "山田太郎様 〒150-0002 東京都渋谷区 TEL 03-3400-1234 注文 2023-01-15 12:34:56 件名: 請求書の件\n"
    text = (line * (1_000_000 // len(line.encode()) + 1))[: 1_000_000 // 3]
    size = len(text.encode())
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        pii.scan(text)
        runs.append(time.perf_counter() - t)
    small = "お客様のお電話番号は090-1234-5678、カードは4111 1111 1111 1111です。"
    t = time.perf_counter()
    for _ in range(2000):
        pii.scan(small)
    small_us = (time.perf_counter() - t) / 2000 * 1e6
    print(
        json.dumps(
            {
                "cases": len(cases),
                "precision": round(all_tp / (all_tp + all_fp), 4),
                "recall": round(all_tp / (all_tp + all_fn), 4),
                "per_kind": per_kind,
                "bare_random_12_digits_my_number_rate": bare_fp,
                # Random order/slip numbers after 注文番号 that are valid cards / My Numbers, so counted.
                "id_word_random_counted_rate": round(id_word_counted / 500, 3),
                "throughput_mb_s_dense_japanese": round(size / min(runs) / 1e6, 2),
                "dense_text_bytes": size,
                "small_clip_scan_us": round(small_us, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
