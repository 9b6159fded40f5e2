"""simq.dists: moments against samples, the text form, stream() and refusing bad input."""

from __future__ import annotations

import math
import os
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simq.dists import (
    Constant,
    Distribution,
    Empirical,
    Erlang,
    Exponential,
    Gamma,
    Hyperexponential,
    Lognormal,
    Pareto,
    Uniform,
    Weibull,
    exponential_rate,
    parse,
    stream,
)
from simq.errors import ScenarioError

PATH = "producers.app.interarrival"
N = 200_000
Z = 5.0  # standard errors allowed; a false alarm at 5 SE has odds of about 1 in 1.7 million

# Every form with a finite fourth moment, so that the sample variance has a known standard error.
FINITE = [
    "exponential(rate=0.8)",
    "exponential(mean=2)",
    "constant(3)",
    "uniform(low=1, high=3)",
    "uniform(low=0, high=0.5)",
    "erlang(k=3, mean=1)",
    "erlang(k=2, rate=4)",
    "gamma(shape=0.5, scale=2)",
    "gamma(mean=2, cv=0.5)",
    "lognormal(mean=1, cv=0.5)",
    "lognormal(mu=-1, sigma=0.3)",
    "hyperexponential(mean=1, cv=2)",
    "hyperexponential(p=[0.2, 0.3, 0.5], rates=[0.5, 1, 4])",
    "pareto(alpha=5, xm=1)",
    "pareto(alpha=6, mean=2)",
    "weibull(shape=2, scale=1)",
    "weibull(shape=0.8, mean=1)",
    "empirical(values=[0, 0.5, 1, 1, 7])",
]

# Forms whose moments are infinite: only the text round trip applies to them.
HEAVY = ["pareto(alpha=0.8, xm=1)", "pareto(alpha=1.5, xm=2)"]


def raw_moment(d: Distribution, k: int) -> float:
    """E[X**k] from textbook formulas, written independently of simq.dists as an oracle."""
    if isinstance(d, Constant):
        return d.value**k
    if isinstance(d, Exponential):
        return math.factorial(k) / d.rate**k
    if isinstance(d, Uniform):
        a, b = d.low, d.high
        return a**k if a == b else (b ** (k + 1) - a ** (k + 1)) / ((k + 1) * (b - a))
    if isinstance(d, Erlang | Gamma):
        shape, scale = (d.k, 1 / d.rate) if isinstance(d, Erlang) else (d.shape, d.scale)
        return scale**k * math.prod(shape + i for i in range(k))
    if isinstance(d, Lognormal):
        return math.exp(k * d.mu + k**2 * d.sigma**2 / 2)
    if isinstance(d, Hyperexponential):
        return sum(p * math.factorial(k) / r**k for p, r in zip(d.p, d.rates, strict=True))
    if isinstance(d, Pareto):
        return d.alpha * d.xm**k / (d.alpha - k) if d.alpha > k else math.inf
    if isinstance(d, Weibull):
        return d.scale**k * math.gamma(1 + k / d.shape)
    if isinstance(d, Empirical):
        return float(np.mean(np.asarray(d.values) ** k))
    raise TypeError(d)


def fourth_central(d: Distribution) -> float:
    m1, m2, m3, m4 = (raw_moment(d, k) for k in (1, 2, 3, 4))
    return m4 - 4 * m1 * m3 + 6 * m1**2 * m2 - 3 * m1**4


# --- moments -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", FINITE)
def test_mean_and_variance_match_the_oracle(text: str) -> None:
    d = parse(text)
    m1, m2 = raw_moment(d, 1), raw_moment(d, 2)
    assert d.mean == pytest.approx(m1, rel=1e-9)
    assert d.variance == pytest.approx(m2 - m1**2, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("text", FINITE)
def test_sample_moments_within_standard_errors(text: str) -> None:
    d = parse(text)
    x = d.sample(np.random.default_rng(20240601), N)
    assert x.dtype == np.float64 and x.shape == (N,)
    assert np.all(x >= 0)
    # The sample mean has SE sqrt(var/n); the sample variance has SE sqrt((mu4 - var**2)/n),
    # mu4 being the fourth central moment (computed exactly from the raw moments).
    se_mean = math.sqrt(d.variance / N)
    se_var = math.sqrt(max(fourth_central(d) - d.variance**2, 0.0) / N)
    assert abs(x.mean() - d.mean) <= Z * se_mean + 1e-12
    assert abs(x.var() - d.variance) <= Z * se_var + 1e-12


def test_sample_of_zero_draws_is_empty() -> None:
    assert parse("exponential(rate=1)").sample(np.random.default_rng(0), 0).shape == (0,)


@pytest.mark.parametrize(
    ("text", "scv"),
    [
        ("exponential(rate=3)", 1.0),
        ("exponential(mean=0.1)", 1.0),
        ("constant(4)", 0.0),
        ("constant(0)", 0.0),
        ("erlang(k=1, mean=2)", 1.0),
        ("erlang(k=4, mean=2)", 0.25),
        ("erlang(k=10, rate=0.5)", 0.1),
        ("hyperexponential(mean=3, cv=1)", 1.0),
        ("hyperexponential(mean=3, cv=2)", 4.0),
        ("hyperexponential(mean=0.2, cv=5)", 25.0),
        ("lognormal(mean=2, cv=0.5)", 0.25),
        ("lognormal(mean=2, cv=3)", 9.0),
        ("gamma(mean=2, cv=0.3)", 0.09),
        ("uniform(low=1, high=3)", (3 - 1) ** 2 / (3 * (1 + 3) ** 2)),
        ("uniform(low=0, high=5)", 1 / 3),
        ("uniform(low=2, high=2)", 0.0),
    ],
)
def test_scv(text: str, scv: float) -> None:
    assert parse(text).scv == pytest.approx(scv, rel=1e-9)


def test_infinite_moments() -> None:
    assert parse("pareto(alpha=0.8, xm=1)").mean == math.inf
    assert parse("pareto(alpha=0.8, xm=1)").scv == math.inf
    heavy = parse("pareto(alpha=1.5, xm=1)")
    assert heavy.mean == pytest.approx(3.0)
    assert heavy.variance == math.inf and heavy.scv == math.inf


# --- text form ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", FINITE + HEAVY)
def test_str_round_trips(text: str) -> None:
    d = parse(text)
    again = parse(str(d))
    assert again == d and type(again) is type(d)
    assert str(again) == str(d)
    assert hash(again) == hash(d)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("exponential(mean=2)", "exponential(rate=0.5)"),
        ("erlang(k=3, mean=1)", "erlang(k=3, rate=3)"),
        ("erlang(k=2, mean=1)", "gamma(shape=2, scale=0.5)"),
        ("gamma(mean=2, cv=0.5)", "gamma(shape=4, scale=0.5)"),
        (
            "lognormal(mean=1, cv=1)",
            f"lognormal(mu={-math.log(2) / 2}, sigma={math.log(2) ** 0.5})",
        ),
        ("hyperexponential(mean=2, cv=1)", "exponential(mean=2)"),
        ("hyperexponential(p=[1], rates=[0.5])", "exponential(rate=0.5)"),
        ("pareto(alpha=3, mean=1)", "pareto(alpha=3, xm=0.6666666666666666)"),
        ("weibull(shape=1, mean=2)", "exponential(mean=2)"),
        ("weibull(shape=2, mean=1)", f"weibull(shape=2, scale={2 / math.sqrt(math.pi)})"),
        ("uniform(low=2, high=2)", "constant(2)"),
        ("empirical(values=[2, 2])", "constant(2)"),
    ],
)
def test_alternative_forms_agree(a: str, b: str) -> None:
    da, db = parse(a), parse(b)
    assert da.mean == pytest.approx(db.mean, rel=1e-12)
    assert da.scv == pytest.approx(db.scv, rel=1e-12, abs=1e-15)


def test_numbers_and_constant_spellings_are_equal() -> None:
    forms: list[str | float] = [
        "constant(2)",
        "constant(value=2)",
        "constant(2.0)",
        "2",
        " 2.0 ",
        2,
        2.0,
        np.float64(2),
    ]
    assert {parse(f) for f in forms} == {Constant(2.0)}
    assert str(parse(2)) == "constant(value=2.0)"


def test_parse_passes_distributions_through() -> None:
    d = Exponential(rate=2)
    assert parse(d, path=PATH) is d


def test_exponential_rate_shorthand() -> None:
    assert exponential_rate(0.8) == parse("exponential(rate=0.8)")
    with pytest.raises(ScenarioError, match=r"producers\.app\.rate: rate must be > 0, got 0"):
        exponential_rate(0, path="producers.app.rate")


def test_constructors_validate_too() -> None:
    with pytest.raises(ScenarioError, match="rate must be > 0, got -1"):
        Exponential(rate=-1)
    with pytest.raises(ScenarioError, match="k must be an integer >= 1, got 0"):
        Erlang(k=0, rate=1)


# --- empirical files ---------------------------------------------------------------------


def test_empirical_file_with_header_comments_and_columns(tmp_path: pathlib.Path) -> None:
    (tmp_path / "waits.csv").write_text(
        "# measured in production\nseconds,host\n\n0.5,a\n1.5,b  # slow one\n2,c\n"
    )
    d = parse("empirical('waits.csv')", path=PATH, base_dir=tmp_path)
    assert d == parse("empirical(values=[0.5, 1.5, 2])")
    assert d.mean == pytest.approx(4 / 3)
    assert d.variance == pytest.approx(np.var([0.5, 1.5, 2]))  # population variance
    assert parse(str(d)) == d  # the text names the file by its absolute path
    assert str(tmp_path / "waits.csv") in str(d)
    assert parse(f"empirical(file={str(tmp_path / 'waits.csv')!r})") == d


def test_empirical_relative_file_without_base_dir_uses_working_folder(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "v.txt").write_text("3\n4\n")
    monkeypatch.chdir(tmp_path)
    assert parse('empirical(file="v.txt")').mean == pytest.approx(3.5)


def test_empirical_samples_only_its_values() -> None:
    x = parse("empirical(values=[1, 5, 9])").sample(np.random.default_rng(3), 1000)
    assert set(np.unique(x)) == {1.0, 5.0, 9.0}


@pytest.mark.parametrize(
    ("content", "rule", "secret"),
    [
        (None, "no such empirical file", None),
        ("", "no values", None),
        ("value\n# nothing yet\n\n", "no values", None),
        ("1\nsecret-abc\n", "line 2: the first column is not a number", "secret-abc"),
        ("1\n-2.5\n", "line 2: values must be finite and >= 0", "-2.5"),
        ("1\nnan\n", "values must be finite", "nan"),
    ],
)
def test_empirical_bad_files(
    tmp_path: pathlib.Path, content: str | None, rule: str, secret: str | None
) -> None:
    """The error names the file and the line, never what the line holds."""
    if content is not None:
        (tmp_path / "missing.csv").write_text(content)
    with pytest.raises(ScenarioError) as info:
        parse("empirical('missing.csv')", path=PATH, base_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(PATH + ": ")
    assert "missing.csv" in message and rule in message
    assert secret is None or secret not in message


# --- stream ------------------------------------------------------------------------------


def test_stream_returns_floats_in_sampling_order_across_blocks() -> None:
    d = parse("gamma(shape=2, scale=3)")
    draw = stream(d, np.random.default_rng(7), block=100)
    got = [draw() for _ in range(250)]
    assert all(type(x) is float for x in got)
    rng = np.random.default_rng(7)
    expected = np.concatenate([d.sample(rng, 100) for _ in range(3)])[:250]
    assert got == expected.tolist()


def test_stream_is_reproducible_and_consumes_rng_in_blocks() -> None:
    d = parse("hyperexponential(mean=1, cv=3)")
    a, b = np.random.default_rng(11), np.random.default_rng(11)
    draw_a, draw_b = stream(d, a, block=64), stream(d, b, block=64)
    assert [draw_a() for _ in range(1000)] == [draw_b() for _ in range(1000)]
    # One call takes a whole block from the generator, and the next block only when needed.
    c, ref = np.random.default_rng(5), np.random.default_rng(5)
    draw_c = stream(d, c, block=64)
    draw_c()
    d.sample(ref, 64)
    assert c.bit_generator.state == ref.bit_generator.state
    for _ in range(63):
        draw_c()
    assert c.bit_generator.state == ref.bit_generator.state
    draw_c()
    d.sample(ref, 64)
    assert c.bit_generator.state == ref.bit_generator.state


def test_stream_of_constant_leaves_rng_alone() -> None:
    rng = np.random.default_rng(1)
    before = rng.bit_generator.state
    draw = stream(parse("constant(2.5)"), rng)
    assert [draw(), draw()] == [2.5, 2.5] and type(draw()) is float
    assert rng.bit_generator.state == before


def test_stream_rejects_empty_blocks() -> None:
    with pytest.raises(ValueError, match="block"):
        stream(parse("exponential(rate=1)"), np.random.default_rng(0), block=0)


# --- safety ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "__import__('os').system('touch {s}')",
        "exponential(rate=__import__('os').system('touch {s}'))",
        "exponential(rate=open('{s}', 'w'))",
        "os.system('touch {s}')",
        "exponential(rate=1)(open('{s}', 'w'))",
        "exponential(rate=1+1)",
        "exponential(**{{'rate': 1}})",
        "exponential(*[1])",
        "empirical(values=[open('{s}', 'w')])",
        "[c for c in ().__class__.__base__.__subclasses__()]",
        "lambda: open('{s}', 'w')",
        "exponential(rate=1); open('{s}', 'w')",
    ],
)
def test_code_is_never_run(
    template: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel = tmp_path / "ran"
    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args))
    text = template.format(s=sentinel)
    with pytest.raises(ScenarioError) as info:
        parse(text, path=PATH)
    assert str(info.value).startswith(PATH + ": ")
    assert not sentinel.exists() and calls == []


def test_code_error_names_the_text() -> None:
    text = '__import__("os")'
    with pytest.raises(ScenarioError) as info:
        parse(text, path=PATH)
    assert str(info.value) == (
        f"{PATH}: not a distribution (allowed: name(key=number, ...)), got {text!r}"
    )


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("exponential(2)", "exponential needs rate= or mean= (not both), got 'exponential(2)'"),
        ("exponential(rate=1, mean=1)", "exponential needs rate= or mean= (not both)"),
        ("exponential()", "exponential needs rate= or mean="),
        ("exponential(rate=-1)", "rate must be > 0, got -1"),
        ("exponential(rate=0)", "rate must be > 0, got 0"),
        ("exponential(mean=-0.5)", "mean must be > 0, got -0.5"),
        ("exponential(rate=1e999)", "rate must be finite, got inf"),
        ("exponential(rate='fast')", "rate must be a number, got 'fast'"),
        ("exponential(rate=1, rate=2)", "exponential has rate= twice"),
        ("expo(rate=1)", "unknown distribution 'expo'; known: constant, empirical,"),
        ("exponential(rate=1, scale=2)", "has no parameter 'scale'; allowed: mean, rate"),
        ("erlang(k=2, mean=1, shape=3)", "has no parameter 'shape'; allowed: k, mean, rate"),
        ("erlang(mean=1)", "erlang needs k= and mean=, or k= and rate="),
        ("erlang(k=0, mean=1)", "k must be an integer >= 1, got 0"),
        ("erlang(k=1.5, mean=1)", "k must be an integer >= 1, got 1.5"),
        ("constant(-1)", "value must be >= 0, got -1"),
        ("-3", "value must be >= 0, got -3"),
        ("uniform(low=-1, high=2)", "low must be >= 0, got -1"),
        ("uniform(low=3, high=2)", "high must be >= low (3), got 2"),
        ("uniform(low=1)", "uniform needs low= and high="),
        ("gamma(shape=0, scale=1)", "shape must be > 0, got 0"),
        ("gamma(mean=1, cv=-0.5)", "cv must be > 0, got -0.5"),
        ("lognormal(mean=1, cv=0)", "cv must be > 0, got 0"),
        ("lognormal(mu=0, sigma=-1)", "sigma must be > 0, got -1"),
        (
            "hyperexponential(p=[0.5, 0.6], rates=[1, 2])",
            "p must sum to 1 (within 1e-09), got [0.5, 0.6]",
        ),
        ("hyperexponential(p=[0.5, 0.5], rates=[1])", "same length (1), got [0.5, 0.5]"),
        ("hyperexponential(p=[0.5, 0.5], rates=[1, -2])", "rates[1] must be > 0, got -2"),
        ("hyperexponential(p=[], rates=[])", "p must not be empty, got []"),
        ("hyperexponential(mean=1, cv=0.5)", "cv must be >= 1 for a hyperexponential, got 0.5"),
        ("pareto(alpha=1, mean=2)", "alpha must be > 1 when mean= is given, got 1"),
        ("pareto(alpha=2, xm=0)", "xm must be > 0, got 0"),
        ("weibull(shape=-2, scale=1)", "shape must be > 0, got -2"),
        ("empirical(values=[1, -1])", "values[1] must be >= 0, got -1"),
        ("empirical(values=[])", "values must not be empty, got []"),
        ("empirical(file=3)", "file must be a string, got 3"),
        ("exponential(rate=nan)", "not a distribution"),
        ("exponential(rate=", "not a distribution"),
        ("", "not a distribution"),
        ("'fast'", "not a distribution"),
    ],
)
def test_bad_input_names_path_rule_and_value(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse(text, path=PATH)
    assert str(info.value).startswith(PATH + ": ")
    assert expected in str(info.value)
    assert info.value.path == PATH


@pytest.mark.parametrize("value", [True, None, [1.0], float("nan"), math.inf, -1])
def test_bad_non_text_values(value: object) -> None:
    with pytest.raises(ScenarioError, match=r"^producers\.app\.interarrival: "):
        parse(value, path=PATH)  # type: ignore[arg-type]


# --- properties --------------------------------------------------------------------------

_rate = st.floats(1e-3, 1e3)
_mean = st.floats(1e-3, 1e3)
valid = st.one_of(
    st.builds(Exponential, rate=_rate),
    st.builds(Constant, value=_mean),
    st.builds(lambda a, w: Uniform(a, a + w), st.floats(0, 10), st.floats(1e-2, 10)),
    st.builds(Erlang, k=st.integers(1, 20), rate=_rate),
    st.builds(Gamma, shape=st.floats(0.05, 50), scale=_mean),
    st.builds(lambda m, c: parse(f"lognormal(mean={m!r}, cv={c!r})"), _mean, st.floats(0.01, 5)),
    st.builds(
        lambda m, c: parse(f"hyperexponential(mean={m!r}, cv={c!r})"), _mean, st.floats(1, 10)
    ),
    st.builds(Pareto, alpha=st.floats(0.5, 10), xm=_mean),
    st.builds(Weibull, shape=st.floats(0.2, 10), scale=_mean),
    st.builds(
        lambda v: Empirical(tuple(v)),
        st.lists(st.floats(0, 1e6), min_size=1, max_size=20).filter(lambda v: max(v) > 0),
    ),
)


@settings(max_examples=200, deadline=None)
@given(d=valid, seed=st.integers(0, 2**32 - 1))
def test_valid_distributions_behave(d: Distribution, seed: int) -> None:
    x = d.sample(np.random.default_rng(seed), 500)
    assert x.shape == (500,)
    assert np.all(np.isfinite(x)) and np.all(x >= 0)
    assert d.mean > 0
    assert d.variance >= 0 and d.scv >= 0
    assert parse(str(d)) == d
