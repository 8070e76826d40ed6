"""Hostile checkpoint files: every one is refused with a one-line CheckpointError, nothing big allocated.

Each case starts from a small valid checkpoint and breaks one thing; the SHA-256 recorded in the
JSON is recomputed for the broken weights, so that each case reaches the check it is meant for
rather than the hash check.  The expected message fragment names that check.

Non-finite weights are refused: a model with NaN / inf weights answers every request with NaN.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from cemssl_ik.kinematics import load_robot
from cemssl_ik.models.checkpoint_format import MAX_METADATA_BYTES, MAX_WEIGHTS_BYTES, json_depth_exceeds

from cemssl_ik.models import CheckpointError, ModelConfig, load_checkpoint, new_model, read_metadata, save_checkpoint


@pytest.fixture(scope="module")
def valid_dir(tmp_path_factory) -> Path:
    """A small valid UR3 checkpoint ``m`` (2 members, hidden 32, 32)."""
    d = tmp_path_factory.mktemp("valid")
    chain = load_robot("ur3")
    model = new_model(chain, ModelConfig(members=2, hidden=(32, 32), latent_dim=6, output="biternion"))
    save_checkpoint(d / "m", model, chain, {"note": "valid"})
    return d


@pytest.fixture
def ckpt(valid_dir, tmp_path) -> Path:
    """A fresh copy of the valid checkpoint, to break: returns the path without extension."""
    for ext in (".json", ".safetensors"):
        shutil.copy(valid_dir / f"m{ext}", tmp_path / f"m{ext}")
    return tmp_path / "m"


def meta_of(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def write_meta(path: Path, meta) -> None:
    path.with_suffix(".json").write_text(json.dumps(meta))


def write_weights(path: Path, blob: bytes) -> None:
    """Replace the weights and record their hash, so that the hash check passes."""
    path.with_suffix(".safetensors").write_bytes(blob)
    meta = meta_of(path)
    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    write_meta(path, meta)


def tensors_of(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return load(path.with_suffix(".safetensors").read_bytes())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    write_weights(path, save(tensors))


def raw_safetensors(header: dict | bytes, data: bytes) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def assert_refused(path: Path, match: str, *, metadata_too: bool = False) -> str:
    """load_checkpoint (and read_metadata when the metadata is broken) refuse ``path`` with a one-line message."""
    calls = [lambda: load_checkpoint(path, load_robot("ur3"))] + ([lambda: read_metadata(path)] if metadata_too else [])
    message = ""
    for call in calls:
        with pytest.raises(CheckpointError, match=match) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and len(message) <= 1000
    return message


def model_config(**change):
    def mutate(meta):
        meta["model_config"].update(change)

    return mutate


def robot_field(key, value):
    def mutate(meta):
        meta["robot"][key] = value

    return mutate


def top(key, value):
    def mutate(meta):
        meta[key] = value

    return mutate


def encoder_field(key, value):
    def mutate(meta):
        meta["target_encoder"][key] = value

    return mutate


def _drop(key):
    def mutate(meta):
        del meta[key]

    return mutate


# (id, change to the metadata, fragment of the expected message)
METADATA_CASES = [
    ("hidden_width_1e7", model_config(hidden=[10**7, 32]), "hidden must be at most 64 widths in \\[1, 65536\\]"),
    ("latent_1e9", model_config(latent_dim=10**9), "latent_dim must be <= 65536"),
    ("members_1e6", model_config(members=10**6), "members must be <= 1024"),
    ("many_layers", model_config(hidden=[8] * 1000), "at most 64 widths"),
    ("cinn_blocks", model_config(method="cinn", output="sigmoid", latent_dim=6, members=100, coupling_blocks=100), "members \\* coupling_blocks <= 1024"),
    ("negative_members", model_config(members=-1), "members >= 1"),
    ("negative_width", model_config(hidden=[-32, 32]), "positive widths"),
    ("negative_latent", model_config(latent_dim=-6), "latent_dim must be >= 0"),
    ("string_for_int", model_config(members="2"), "'members' must be an integer, got str"),
    ("bool_for_int", model_config(members=True), "'members' must be an integer, got bool"),
    ("float_for_int", model_config(latent_dim=6.0), "'latent_dim' must be an integer, got float"),
    ("bool_in_widths", model_config(hidden=[True, 32]), "'hidden' must be a list of integers"),
    ("string_widths", model_config(hidden="32,32"), "'hidden' must be a list of integers"),
    ("int_for_bool", model_config(base_symmetry=1), "'base_symmetry' must be true or false"),
    ("nan_scale", model_config(residual_scale=float("nan")), "residual_scale must be > 0"),
    ("huge_int_for_float", model_config(kl_weight=10**400), "'kl_weight' must be a number, got int"),
    ("unknown_config_key", model_config(__class__="x"), "unknown model config key"),
    ("config_not_object", top("model_config", [1, 2]), "a model config is a JSON object"),
    ("bad_branch_spec", model_config(branches="sin:" + ",".join(map(str, range(40)))), "branch spec"),
    ("dtype_dunder", top("dtype", "__class__"), "'dtype' must be one of"),
    ("dtype_not_string", top("dtype", ["float32"]), "'dtype' must be one of"),
    ("robot_null", top("robot", None), "'robot' must be a JSON object"),
    ("robot_list", top("robot", []), "'robot' must be a JSON object"),
    ("robot_name_int", robot_field("name", 3), "robot 'name' must be a non-empty string"),
    ("robot_name_huge", robot_field("name", "x" * 100_000), "robot 'name' must be a non-empty string"),
    ("planar_name_huge", robot_field("name", "planar100000000"), "does not match its 6 recorded joints"),
    ("joint_names_ints", robot_field("joint_names", [1, 2, 3, 4, 5, 6]), "'joint_names' must be a list of 1 to 64 strings"),
    ("too_many_joints", robot_field("joint_names", ["j"] * 100), "'joint_names' must be a list of 1 to 64 strings"),
    ("limits_strings", robot_field("learning_lower", ["-3"] * 6), "'learning_lower' must be a list of 6 finite numbers"),
    ("limits_short", robot_field("learning_upper", [3.0] * 5), "'learning_upper' must be a list of 6 finite numbers"),
    ("limits_inverted", robot_field("learning_upper", [-4.0] * 6), "invalid robot learning limits"),
    ("periodic_ints", robot_field("periodic", [1] * 6), "'periodic' must be a list of 6 booleans"),
    ("robot_missing_key", lambda m: m["robot"].pop("tip_link"), "robot record lacks \\['tip_link'\\]"),
    ("mean_nan", encoder_field("mean", [float("nan"), 0.0, 0.0]), "'mean' must be a list of 3 finite numbers"),
    ("mean_huge_int", encoder_field("mean", [10**400, 0, 0]), "'mean' must be a list of 3 finite numbers"),
    ("scale_negative", encoder_field("scale", -1.0), "scale must be positive"),
    ("scale_string", encoder_field("scale", "1"), "'scale' must be a finite number"),
    ("encoder_kind", encoder_field("kind", "pose"), "does not match config target 'position'"),
    ("encoder_axis", lambda m: m["target_encoder"].update(axis=[0, 0, 1], axis_point=[0, 0, 0.15]), "symmetry axis: True\\) does not match"),
    ("encoder_unknown_key", encoder_field("eval", 1), "'target_encoder' needs kind, mean, scale"),
    ("format_version_bool", top("format_version", True), "unsupported checkpoint format version True"),
    ("format_version_99", top("format_version", 99), "unsupported checkpoint format version 99"),
    ("method_mismatch", top("method", "cvae"), "differ from model_config's"),
    ("output_unknown", top("output", "quaternion"), "'output' must be one of"),
    ("sha_not_hex", top("weights_sha256", "../../etc/passwd"), "64 lowercase hex digits"),
    ("training_list", top("training", [1]), "'training' must be a JSON object"),
    ("unknown_top_key", top("__reduce__", "os.system"), "unknown keys \\['__reduce__'\\]"),
    ("missing_hash", _drop("weights_sha256"), "lacks \\['weights_sha256'\\]"),
    ("only_robot", lambda m: m.clear() or m.update(robot=None), "unsupported checkpoint format version None"),
]


@pytest.mark.parametrize("case,mutate,match", METADATA_CASES, ids=[c[0] for c in METADATA_CASES])
def test_hostile_metadata_is_refused(ckpt, case, mutate, match):
    meta = meta_of(ckpt)
    mutate(meta)
    write_meta(ckpt, meta)
    assert_refused(ckpt, match, metadata_too=True)


@pytest.mark.parametrize(
    "text,match",
    [
        (b'{"format_version": 1, "robot": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "nested deeper than 200 levels"),
        (b'{"robot": {"a": ' * 50_000 + b"1" + b"}" * 50_000, "nested deeper than 200 levels"),
        (b"[" * 300, "nested deeper than 200 levels"),  # unterminated too
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b'{"format_version": 1' + b"0" * 5000 + b', "robot": {}}', "not valid JSON"),  # an int beyond Python's digit limit
        (b"[1, 2, 3]", "not a cemssl_ik checkpoint description"),
        (b"null", "not a cemssl_ik checkpoint description"),
        (b"", "not valid JSON"),
    ],
    ids=["nested_200000", "objects_50000", "unterminated_300", "syntax", "binary", "int_digits", "list", "null", "empty"],
)
def test_hostile_json_text_is_refused(ckpt, text, match):
    ckpt.with_suffix(".json").write_bytes(text)
    assert_refused(ckpt, match, metadata_too=True)


def test_metadata_over_the_size_bound_is_refused_unread(ckpt):
    path = ckpt.with_suffix(".json")
    with open(path, "r+b") as f:
        f.truncate(MAX_METADATA_BYTES + 1)  # sparse: no disk cost
    assert_refused(ckpt, f"more than the {MAX_METADATA_BYTES} accepted", metadata_too=True)


def test_brackets_inside_strings_do_not_count_as_nesting(ckpt):
    """The depth check skips strings (escaped quotes and backslashes included): this still loads."""
    meta = meta_of(ckpt)
    meta["training"] = {"note": '[{"\\' + "[" * 5000 + '\\"', "path": "C:\\\\" + "{" * 300}
    write_meta(ckpt, meta)
    model, info = load_checkpoint(ckpt, load_robot("ur3"))
    assert info.training["note"].endswith('\\"') and model.num_members == 2


def test_json_depth_scan_agrees_with_the_parsed_depth():
    """json_depth_exceeds on the text == the depth of the parsed value, for random JSON full of
    brackets, quotes and backslashes inside strings."""
    rng = random.Random(0)
    alphabet = '[]{}"\\ab,:'

    def value(depth):
        if depth == 0 or rng.random() < 0.3:
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        if rng.random() < 0.5:
            return [value(depth - 1) for _ in range(rng.randint(0, 3))]
        return {"".join(rng.choice(alphabet) for _ in range(3)): value(depth - 1) for _ in range(rng.randint(0, 3))}

    def depth_of(v):
        items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        return 0 if items is None else 1 + max((depth_of(x) for x in items), default=0)

    for _ in range(300):
        v = value(rng.randint(0, 8))
        text = json.dumps(v).encode()
        d = depth_of(v)
        assert not json_depth_exceeds(text, d) and (d == 0 or json_depth_exceeds(text, d - 1)), text
    # backslash runs and strings across the scanner's 64 kB chunks
    for k in (65530, 65535, 65536, 65537, 131073):
        for v in (["\\" * k + '"[[', [[["x"]]]], ["a" * k + "[", [[[]]]], ["[" * k, [[[]]]]):
            text = json.dumps(v).encode()
            assert not json_depth_exceeds(text, 4) and json_depth_exceeds(text, 3), (k, text[:20])


def _tensor_cases():
    def rename(t):
        t["bogus"] = t.pop("net.net.0.bias")

    def extra(t):
        t["extra"] = torch.zeros(0)

    def transpose(t):
        t["net.net.0.weight"] = t["net.net.0.weight"].transpose(1, 2).contiguous()

    def int32(t):
        t["net.net.2.weight"] = t["net.net.2.weight"].to(torch.int32)

    def nan(t):
        t["net.net.2.weight"][0, 3, 4] = float("nan")

    def inf(t):
        t["net.net.4.bias"][1, 0, 0] = float("-inf")

    def missing(t):
        del t["net.net.4.bias"]

    def double(t):
        for k in t:
            t[k] = t[k].double()

    return [
        ("renamed_tensor", rename, "missing tensors \\['net.net.0.bias'\\], unexpected \\['bogus'\\]"),
        ("extra_tensor", extra, "unexpected \\['extra'\\]"),
        ("missing_tensor", missing, "missing tensors \\['net.net.4.bias'\\], unexpected \\[\\]"),
        ("transposed_tensor", transpose, "tensor net.net.0.weight is \\(2, 32, 9\\) in the file, \\(2, 9, 32\\) in model_config"),
        ("int32_tensor", int32, "tensor net.net.2.weight is 'I32' in the file, but the metadata's dtype is F32"),
        ("float64_tensors", double, "tensor net.net.0.weight is 'F64' in the file, but the metadata's dtype is F32"),
        ("nan_weight", nan, "tensor net.net.2.weight holds non-finite values"),
        ("inf_weight", inf, "tensor net.net.4.bias holds non-finite values"),
    ]


TENSOR_CASES = _tensor_cases()


@pytest.mark.parametrize("case,mutate,match", TENSOR_CASES, ids=[c[0] for c in TENSOR_CASES])
def test_hostile_tensors_are_refused(ckpt, case, mutate, match):
    tensors = tensors_of(ckpt)
    mutate(tensors)
    save_tensors(ckpt, tensors)
    assert_refused(ckpt, match)


def test_hostile_safetensors_layouts_are_refused(ckpt):
    blob = ckpt.with_suffix(".safetensors").read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header, data = json.loads(blob[8 : 8 + n]), blob[8 + n :]
    first, second = sorted(header, key=lambda k: header[k]["data_offsets"][0])[:2]

    def with_header(change):
        h = json.loads(json.dumps(header))
        change(h)
        return raw_safetensors(h, data)

    cases = [
        (blob[:-100], "truncated or padded"),
        (blob + b"\0" * 4096, "truncated or padded"),
        (blob[:4], "model_config implies \\d+ bytes of weights, the file has 4 bytes"),
        (struct.pack("<Q", 2**63) + blob[8:], "header length 9223372036854775808 beyond the file"),
        (struct.pack("<Q", len(blob)) + blob[8:], "header length \\d+ beyond the file"),
        (raw_safetensors(b"{" * n, data), "not valid JSON"),
        (raw_safetensors(b"[" * (n // 2) + b"]" * (n - n // 2), data), "nested deeper than 4 levels"),
        (raw_safetensors(b"[]", data), "its header is not a JSON object"),
        (with_header(lambda h: h[first].update(data_offsets=h[second]["data_offsets"])), "tensor .* spans|overlaps|gap"),
        (with_header(lambda h: h[first].update(data_offsets=[-8, 0])), "has the entry"),
        (with_header(lambda h: h[first].update(data_offsets=["0", "8"])), "has the entry"),
        (with_header(lambda h: h[first].update(shape=[-2, 15, 32])), "has the entry"),
        (with_header(lambda h: h[first].update(shape=[2.0, 15, 32])), "has the entry"),
        (with_header(lambda h: h[first].update(dtype=None)), "has the entry"),
        (with_header(lambda h: h[first].update(code="x")), "has the entry"),
        (with_header(lambda h: h.update(__metadata__={"a": 1})), "__metadata__ must map strings to strings"),
    ]
    for i, (bad, match) in enumerate(cases):
        write_weights(ckpt, bad)
        try:
            assert_refused(ckpt, match)
        except BaseException as exc:
            raise AssertionError(f"case {i} ({match})") from exc


def test_weights_beyond_the_size_bound_are_refused_unread(ckpt):
    """A 64 GiB (sparse) weights file is refused from its size alone: nothing is read or hashed."""
    path = ckpt.with_suffix(".safetensors")
    with open(path, "r+b") as f:
        f.truncate(64 << 30)
    start = time.perf_counter()
    assert_refused(ckpt, f"is {64 << 30} bytes, more than the {MAX_WEIGHTS_BYTES} accepted")
    assert time.perf_counter() - start < 5.0  # hashing 64 GiB would take minutes


def test_special_files_and_pickles_are_refused_and_never_run(ckpt, tmp_path):
    """A FIFO or a device in the weights' place is refused without blocking; a pickle is never unpickled."""
    path = ckpt.with_suffix(".safetensors")
    path.unlink()
    os.mkfifo(path)
    assert_refused(ckpt, "needs both")
    path.unlink()
    path.symlink_to("/dev/zero")
    assert_refused(ckpt, "needs both")
    path.unlink()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for blob in (pickle.dumps(Payload()), pickle.dumps(Payload(), protocol=0)):
        write_weights(ckpt, blob)
        assert_refused(ckpt, "not a valid safetensors file|model_config implies")
        assert not marker.exists()


def test_save_refuses_metadata_the_loader_would_refuse(tmp_path):
    chain = load_robot("ur3")
    model = new_model(chain, ModelConfig(members=1, hidden=(8,), latent_dim=2))
    with pytest.raises(CheckpointError, match="shorten the training record"):
        save_checkpoint(tmp_path / "big", model, chain, {"history": "x" * MAX_METADATA_BYTES})
    assert not list(tmp_path.iterdir())  # nothing written


HOSTILE_CONFIGS = {
    # the examples: within the size bounds or not, none gets to allocate
    "hidden_30000": {"hidden": [30000, 30000]},
    "hidden_1e7": {"hidden": [10**7, 32]},
    "latent_1e9": {"latent_dim": 10**9},
    "members_1e6": {"members": 10**6},
    "members_1024_wide": {"members": 1024, "hidden": [65536] * 64},
}


def test_hostile_files_allocate_nothing_big(ckpt, tmp_path):
    """In a fresh process, loading each hostile file (after one valid load, so that imports and
    caches are in place) raises the peak resident memory by less than 100 MB; the 30000-wide
    hidden layer alone would take ~3.6 GB if built before the check."""
    cases = {}
    for name, change in HOSTILE_CONFIGS.items():
        meta = meta_of(ckpt)
        meta["model_config"].update(change)
        d = tmp_path / name
        d.mkdir()
        shutil.copy(ckpt.with_suffix(".safetensors"), d / "m.safetensors")
        write_meta(d / "m", meta)
        cases[name] = str(d / "m")
    d = tmp_path / "sparse"
    d.mkdir()
    shutil.copy(ckpt.with_suffix(".json"), d / "m.json")
    with open(d / "m.safetensors", "wb") as f:
        f.truncate(64 << 30)
    cases["sparse_64gib"] = str(d / "m")
    d = tmp_path / "deep"
    d.mkdir()
    shutil.copy(ckpt.with_suffix(".safetensors"), d / "m.safetensors")
    (d / "m.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    cases["deep_json"] = str(d / "m")
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        from cemssl_ik.kinematics import load_robot
        from cemssl_ik.models import CheckpointError, load_checkpoint
        chain = load_robot("ur3")
        load_checkpoint({str(ckpt)!r}, chain)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        refused = []
        for name, path in {cases!r}.items():
            try:
                load_checkpoint(path, chain)
            except CheckpointError:
                refused.append(name)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"refused": refused, "growth_kib": after - before}}))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert sorted(out["refused"]) == sorted(cases)
    assert out["growth_kib"] < 100 * 1024, out  # ru_maxrss is in KiB on Linux


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cemssl_ik.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_refuses_hostile_models_with_one_line_and_exit_2(ckpt, tmp_path):
    """`eval`, `solve` and `prune` on hostile files: exit 2, one line on stderr, no traceback."""
    deep = tmp_path / "deep"
    deep.mkdir()
    shutil.copy(ckpt.with_suffix(".safetensors"), deep / "m.safetensors")
    (deep / "m.json").write_bytes(b'{"robot": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    meta = meta_of(ckpt)
    meta["dtype"] = "__class__"
    write_meta(ckpt, meta)
    sparse = tmp_path / "sparse"
    sparse.mkdir()
    meta["dtype"] = "float32"
    write_meta(sparse / "m", meta)
    with open(sparse / "m.safetensors", "wb") as f:
        f.truncate(64 << 30)
    runs = [
        (("eval", "--model", str(ckpt), "--targets", "5"), "'dtype' must be one of"),
        (("eval", "--model", str(deep / "m"), "--targets", "5"), "nested deeper than"),
        (("solve", "--model", str(sparse / "m"), "0.2", "0.1", "0.3"), "more than the"),
        (("prune", "--model", str(deep / "m"), "--out", str(tmp_path / "out")), "nested deeper than"),
    ]
    for args, fragment in runs:
        run = _cli(*args)
        assert run.returncode == 2, (args, run.stderr)
        assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert run.stderr.startswith("cemssl-ik: error: ") and fragment in run.stderr, run.stderr


HOSTILE_VALUES = [None, True, False, 0, -1, 2**31, 10**400, 1e308, -1e308, float("nan"), float("inf"), "", "x", "__class__", [], [None], [1e308] * 3, {}, {"a": 1}, [[[[[[]]]]]], "9" * 5000]


def _paths_in(value, prefix=()):
    """Every key path into a JSON value (containers and leaves)."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        yield from _paths_in(v, (*prefix, k))


def test_fuzzed_metadata_loads_or_raises_checkpoint_error(ckpt):
    """400 seeded mutations (one field of the metadata replaced by a hostile value, or removed):
    each loads, or raises CheckpointError with one line; never another exception."""
    rng = random.Random(1)
    original = meta_of(ckpt)
    paths = [p for p in _paths_in(original) if p and p[0] not in ("training", "versions", "created")]
    chain = load_robot("ur3")
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(400):
        meta = json.loads(json.dumps(original))
        path = rng.choice(paths)
        parent = meta
        for k in path[:-1]:
            parent = parent[k]
        if isinstance(parent, dict) and rng.random() < 0.15:
            del parent[path[-1]]
        else:
            parent[path[-1]] = json.loads(json.dumps(rng.choice(HOSTILE_VALUES)))
        write_meta(ckpt, meta)
        for call in (lambda: read_metadata(ckpt), lambda: load_checkpoint(ckpt, chain)):
            try:
                call()
                outcomes["loaded"] += 1
            except CheckpointError as exc:
                assert "\n" not in str(exc), path
                outcomes["refused"] += 1
            except Exception as exc:  # noqa: BLE001 - the point of the test
                raise AssertionError(f"{path} -> {type(exc).__name__}: {exc}") from exc
    assert outcomes["refused"] > 400, outcomes  # most mutations break the file


def test_fuzzed_weights_header_loads_or_raises_checkpoint_error(ckpt):
    """300 seeded corruptions of the safetensors header (byte flips, insertions, cuts; the recorded
    hash kept in step): each loads, or raises CheckpointError; never another exception."""
    rng = random.Random(2)
    blob = ckpt.with_suffix(".safetensors").read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    chain = load_robot("ur3")
    for _ in range(300):
        b = bytearray(blob)
        i = rng.randrange(8 + n)
        kind = rng.randrange(3)
        if kind == 0:
            b[i] = rng.randrange(256)
        elif kind == 1:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            del b[i : i + rng.randint(1, 64)]
        write_weights(ckpt, bytes(b))
        try:
            load_checkpoint(ckpt, chain)
        except CheckpointError as exc:
            assert "\n" not in str(exc)
        except Exception as exc:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"{kind} at {i} -> {type(exc).__name__}: {exc}") from exc
