"""Fuzz `leaderboard add` with corrupted copies of a bundle the board already holds, in a process whose address
space is capped (as `ulimit -v` caps it): `python fuzz_bundles.py BUNDLE BOARD EXAMPLES LIMIT_KB SCRATCH`.

Each example corrupts the bundle (bit flips, truncation, reordered, dropped or repeated entries, a zeroed or
repeated span) and must be refused with one Rejected whose reason is one line, within the example's deadline,
with the board's tree unchanged (the original bundle is on the board already: even a corruption that keeps its
content is refused, as a duplicate). Prints a JSON summary; exits non-zero on the first failure (hypothesis
shrinks it first). Run by tests/board/test_board_fuzz.py; not a test module itself.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import sys
import warnings
import zipfile
from collections import Counter
from pathlib import Path


def main() -> None:
    bundle, board, examples, limit_kb, scratch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
    limit = int(limit_kb) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from vlascore.board import Board, Rejected

    original = bundle.read_bytes()
    with zipfile.ZipFile(bundle) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    work = Path(scratch)
    work.mkdir(parents=True, exist_ok=True)

    def tree(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))
            if not p.name.endswith(".lock")  # the board's lock file is created by the first add
        }

    Board(board).add  # noqa: B018 - import everything the adds use before the first example is timed
    before = tree(board)
    reasons: Counter[str] = Counter()

    def rezip(order: list[int], path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a repeated name
            with zipfile.ZipFile(path, "w") as zf:
                for k in order:
                    info, data = members[k]
                    zf.writestr(info, data, compress_type=info.compress_type)

    n = len(members)
    corruption = st.one_of(
        st.tuples(
            st.just("flip"),
            st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 7)), min_size=1, max_size=16),
        ),
        st.tuples(st.just("truncate"), st.integers(0, len(original) - 1)),
        st.tuples(st.just("reorder"), st.permutations(range(n))),
        st.tuples(st.just("drop"), st.integers(0, n - 1)),
        st.tuples(st.just("repeat"), st.integers(0, n - 1)),
        st.tuples(st.just("zero"), st.tuples(st.integers(0, len(original) - 1), st.integers(1, 4096))),
        st.tuples(st.just("splice"), st.tuples(st.integers(0, len(original) - 1), st.integers(1, 4096))),
    )

    @settings(
        max_examples=examples,
        deadline=30_000,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(corruption)
    def refused(case: tuple[str, object]) -> None:
        kind, arg = case
        path = work / "corrupt.zip"
        if kind == "flip":
            data = bytearray(original)
            for offset, bit in arg:  # type: ignore[attr-defined]
                data[offset] ^= 1 << bit
            path.write_bytes(bytes(data))
        elif kind == "truncate":
            path.write_bytes(original[: int(arg)])  # type: ignore[call-overload]
        elif kind == "reorder":
            rezip(list(arg), path)  # type: ignore[call-overload]
        elif kind == "drop":
            rezip([k for k in range(n) if k != arg], path)
        elif kind == "repeat":
            rezip([*range(n), int(arg)], path)  # type: ignore[call-overload]
        else:
            start, length = arg  # type: ignore[misc]
            chunk = b"\0" * length if kind == "zero" else original[start : start + length]
            path.write_bytes(original[:start] + chunk + original[start + (length if kind == "zero" else 0) :])
        try:
            Board(board).add(path)
        except Rejected as exc:
            assert "\n" not in str(exc), str(exc)
            reasons[str(exc.reason).split(" ")[0]] += 1
        else:
            raise AssertionError(f"a corrupted bundle ({kind}) was accepted")
        finally:
            path.unlink(missing_ok=True)
        assert tree(board) == before, "the board changed"

    refused()
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"examples": sum(reasons.values()), "reasons": dict(reasons.most_common(12))}))


if __name__ == "__main__":
    main()
