"""debootstrap's output as a progress fraction."""

from __future__ import annotations

from nova.images.progress import DebootstrapProgress

PACKAGES = [f"pkg{i}" for i in range(10)]
REQUIRED = PACKAGES[:7]
LOG = [
    "I: Target architecture can be executed",
    "I: Retrieving InRelease ",
    "I: Checking Release signature",
    "I: Valid Release signature (key id 4D64FEC119C2029067D6E791F8D2585B8783D481)",
    "I: Retrieving Packages ",
    "I: Validating Packages ",
    "I: Resolving dependencies of required packages...",
    "I: Resolving dependencies of base packages...",
    "I: Checking component main on http://deb.debian.org/debian...",
    *(f"I: {verb} {p} 1.0-1" for p in PACKAGES for verb in ("Retrieving", "Validating")),
    "I: Chosen extractor for .deb packages: dpkg-deb",
    *(f"I: Extracting {p}..." for p in REQUIRED),
    "I: Installing core packages...",
    "I: Unpacking required packages...",
    *(f"I: Unpacking {p}:amd64..." for p in REQUIRED),
    "I: Configuring required packages...",
    *(f"I: Configuring {p}:amd64..." for p in REQUIRED),
    "I: Unpacking the base system...",
    *(f"I: Unpacking {p}..." for p in PACKAGES[7:]),
    "I: Configuring the base system...",
    *(f"I: Configuring {p}..." for p in PACKAGES[7:]),
    "I: Base system installed successfully.",
]


def test_a_whole_run_moves_forward_through_every_phase() -> None:
    parser = DebootstrapProgress(expected_packages=12)
    updates = [u for u in (parser.feed(line) for line in LOG) if u is not None]

    fractions = [u.fraction for u in updates]
    assert fractions == sorted(fractions)
    assert fractions[0] > 0
    assert fractions[-1] == 0.98  # the store's own finishing steps take it to 1
    phases = [u.phase for u in updates]
    assert list(dict.fromkeys(phases)) == ["resolve", "download", "extract", "install", "finish"]
    assert parser.packages == 10


def test_downloads_count_against_the_expected_total_until_it_is_known() -> None:
    parser = DebootstrapProgress(expected_packages=4)
    for line in LOG[:9]:
        parser.feed(line)

    first = parser.feed("I: Validating pkg0 1.0-1")
    assert first is not None
    assert (first.done, first.total) == (1, 4)
    for i in range(1, 6):
        update = parser.feed(f"I: Validating pkg{i} 1.0-1")
    # More packages than expected: the total grows instead of passing 100 %.
    assert update is not None
    assert (update.done, update.total) == (6, 6)
    assert update.fraction <= 0.47


def test_dpkg_steps_count_packages_and_banners_do_not() -> None:
    parser = DebootstrapProgress(expected_packages=2)
    parser.feed("I: Validating a 1")
    parser.feed("I: Validating b 1")
    assert parser.feed("I: Unpacking required packages...") is None
    update = parser.feed("I: Unpacking a:amd64...")
    assert update is not None
    assert update.phase == "install"
    assert update.total == 2


def test_other_lines_are_not_progress() -> None:
    parser = DebootstrapProgress(expected_packages=10)
    assert parser.feed("W: Failure trying to run: chroot ...") is None
    assert parser.feed("E: Couldn't download packages") is None
    assert parser.feed("") is None
