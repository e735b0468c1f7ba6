"""`tfmask.guards.guarded` and the sites that use it: in a graph an assert is
ordered only against stateful ops, so the ops that could fail with a raw error
must reach the check through a control edge. Running a bad input does not show
this (by op order the check often wins anyway: the span-corruption message test
passed before its fix), so these tests read the traced graph."""

import ast
import pathlib
import types

import pytest
import tensorflow as tf

import tfmask
from tfmask.data import features as F
from tfmask.data import packing
from tfmask.data.masking import FeatureMasking, SpanCorruption
from tfmask.data.masking import dense as dense_masking
from tfmask.data.masking import span_corruption
from tfmask.guards import guarded
from tfmask.tasks import causal_lm, classifier
from tfmask.tasks import dense as dense_tasks
from tfmask.text.tokenizer import WordPieceTokenizer


def ancestors(op):
    """Every op that `op` waits for, through data and control edges."""
    seen, stack = set(), [op]
    while stack:
        current = stack.pop()
        for parent in [t.op for t in current.inputs] + list(current.control_inputs):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def message(check):
    """The constant strings an Assert op prints (its data inputs and what they are built from)."""
    strings = []
    for data in check.inputs[1:]:
        for op in ancestors(data.op) | {data.op}:
            if op.type == "Const" and op.get_attr("dtype") == tf.string:
                strings += [s.decode() for s in tf.make_ndarray(op.get_attr("value")).ravel()]
    return " ".join(strings)


def waits_for(op, fragment):
    """Whether `op` runs only after an Assert whose message holds `fragment`."""
    return any(a.type == "Assert" and fragment in message(a) for a in ancestors(op))


def trace(fn, *specs):
    return tf.function(fn, autograph=False).get_concrete_function(*specs).graph


# -- the helper ------------------------------------------------------------------

def test_guarded_value_waits_for_every_check_that_is_not_none():
    variable = tf.Variable(0, dtype=tf.int64)
    captured = {}

    def fn(x):
        first = tf.debugging.assert_positive(tf.size(x), message="empty")
        second = tf.debugging.assert_less(x, 100, message="too big")
        update = variable.assign_add(tf.size(x, out_type=tf.int64))  # a stateful op, not an assert
        value = {"x": x, "pair": (x + 1, tf.RaggedTensor.from_row_lengths(x, [1, tf.size(x) - 1]))}
        captured["out"] = guarded(value, first, None, second, update)
        captured["checks"] = {first, second, update.op}
        return captured["out"]["x"]

    trace(fn, tf.TensorSpec([None], tf.int32))
    out = captured["out"]
    assert set(out) == {"x", "pair"} and isinstance(out["pair"], tuple)
    assert isinstance(out["pair"][1], tf.RaggedTensor)
    for leaf in tf.nest.flatten(out, expand_composites=True):
        assert captured["checks"] <= set(leaf.op.control_inputs), leaf.op.name


def test_guarded_returns_the_value_itself_when_nothing_is_left_to_wait_for():
    x = tf.constant([1, 2])
    # Eagerly an assert has already run and returns None.
    assert guarded(x, tf.debugging.assert_positive(x)) is x
    assert guarded(x) is x
    captured = {}

    def fn(y):
        captured["same"] = guarded(y, None) is y
        return y

    trace(fn, tf.TensorSpec([None], tf.int32))
    assert captured["same"]


# -- the sites ---------------------------------------------------------------------
# Each case traces the real function with the kind of input its check is about
# and returns the ops that could fail first with a raw error; each must wait for
# the check. `module` is where the site imports `guarded` from: with `guarded`
# turned into a no-op there, the same ops must NOT wait, so the case is not vacuous.

def span_encode_graph():
    corrupt = SpanCorruption([900, 901], input_length=8, target_length=8)
    return trace(corrupt._encode, tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.bool))


def sentinel_gathers():
    """The gathers from the sentinel table: out of range once the sentinels run out."""
    graph = span_encode_graph()
    return [op for op in graph.get_operations() if op.type == "GatherV2"
            and op.inputs[0].op.type == "Const"
            and list(tf.make_ndarray(op.inputs[0].op.get_attr("value"))) == [900, 901]]


def computed_pads():
    """The pads to input_length / target_length: by a negative amount once a row is too long."""
    graph = span_encode_graph()
    return [op for op in graph.get_operations()
            if op.type in ("Pad", "PadV2") and op.inputs[1].op.type != "Const"]


def patch_mask_ops():
    """Every op computed from the patch mask's random draw, including where it meets
    an image whose size the grid does not divide (CI saw a raw 'Incompatible shapes')."""
    masker = FeatureMasking(0.5, mode="patch", patch_size=4)
    graph = trace(lambda x: masker({F.INPUTS: x}, seed=[1, 2]),
                  tf.TensorSpec([None, None, None, 3]))
    ops = graph.get_operations()
    random = {op for op in ops if op.type.startswith("StatelessRandom")}
    # Not the function's own outputs: tf.function makes those wait for every assert.
    outputs = {t.op for t in graph.outputs}
    return [op for op in ops if ancestors(op) & random and op not in outputs]


def packing_scatters(overlong_keys):
    """The scatters into the packed rows: out of bounds for a document longer than the row."""
    keys = overlong_keys
    pack_window = packing._window_packer(4, "fail", keys, {k: 0 for k in keys}, ())
    spec = tf.RaggedTensorSpec([None, None], tf.int32, row_splits_dtype=tf.int64)
    graph = trace(pack_window, {k: spec for k in keys})
    return [op for op in graph.get_operations() if op.type == "TensorScatterUpdate"]


def returned(fn, *specs):
    """[the op of what `fn` returns inside the graph] (not the function's output identity)."""
    captured = []

    def wrapper(*args):
        captured.append(fn(*args))
        return captured[-1]

    trace(wrapper, *specs)
    return [captured[-1].op]


def label_config():
    return types.SimpleNamespace(data=types.SimpleNamespace(label_key="label"),
                                 model=types.SimpleNamespace(num_classes=2))


def classifier_label():
    task = types.SimpleNamespace(config=label_config())
    return returned(lambda label: classifier.ClassifierTask._label(task, {"label": label}),
                    tf.TensorSpec([], tf.int64))


def dense_label():
    task = types.SimpleNamespace(config=label_config())
    return returned(lambda label: dense_tasks.DenseClassifierTask._label(task, label),
                    tf.TensorSpec([], tf.int64))


def causal_lm_prompt_lengths():
    """What the model's generate receives as prompt lengths: an empty prompt has no last token."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]
    seen = []

    class Model:
        def generate(self, token_ids, prompt_lengths, **kwargs):
            seen.append(prompt_lengths)
            return token_ids

    task = types.SimpleNamespace(
        config=types.SimpleNamespace(data=types.SimpleNamespace(sequence_length=6)),
        tokenizer=WordPieceTokenizer(vocab), text_until_end=lambda output, start: output)
    trace(lambda texts: causal_lm.CausalLMTask.serve(task, Model(), texts)["text"],
          tf.TensorSpec([None], tf.string))
    return [seen[-1].op]


SITES = {
    "span corruption: sentinels run out": (
        span_corruption, sentinel_gathers, "more noise spans than sentinel_ids"),
    "span corruption: output longer than input_length": (
        span_corruption, computed_pads, "output longer than input_length"),
    "span corruption: output longer than target_length": (
        span_corruption, computed_pads, "output longer than target_length"),
    "dense masking: patch grid": (
        dense_masking, patch_mask_ops, "patch_size=4 must divide the image height and width"),
    "packing: overlong document": (
        packing, lambda: packing_scatters((F.TOKEN_IDS,)), "more than sequence_length=4"),
    "packing: keys differ in length": (
        packing, lambda: packing_scatters((F.TOKEN_IDS, F.WORD_IDS)), "differ in length"),
    "classifier: label outside num_classes": (
        classifier, classifier_label, "holds a label outside [0, 2)"),
    "dense classifier: label outside num_classes": (
        dense_tasks, dense_label, "holds a label outside [0, 2)"),
    "causal_lm serve: empty prompt": (
        causal_lm, causal_lm_prompt_lengths, "a prompt is empty"),
}


@pytest.mark.parametrize("site", SITES)
def test_the_ops_a_check_guards_wait_for_it(site, monkeypatch):
    module, guarded_ops, fragment = SITES[site]
    ops = guarded_ops()
    assert ops, "the case found no op to check; update its selector"
    assert all(waits_for(op, fragment) for op in ops), [
        op.name for op in ops if not waits_for(op, fragment)]
    # Not vacuous: without the guard (only the function's automatic ordering left),
    # the ops that could fail first do not wait for the check.
    monkeypatch.setattr(module, "guarded", lambda value, *checks: value)
    assert not any(waits_for(op, fragment) for op in guarded_ops())


# -- no hand-written sites -----------------------------------------------------------

def test_only_guards_py_writes_control_dependencies():
    """A hand-written `with tf.control_dependencies(...)` elsewhere is easy to get
    subtly wrong (an identity outside the block orders nothing): use `guarded`."""
    root = pathlib.Path(tfmask.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "guards.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = (node.attr if isinstance(node, ast.Attribute)
                    else node.name if isinstance(node, ast.alias) else getattr(node, "id", None))
            if name == "control_dependencies":
                offenders.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    assert not offenders, f"use tfmask.guards.guarded instead of control_dependencies at {offenders}"
