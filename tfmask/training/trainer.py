"""The training loop: one plain step function, checkpoints, exact resume.

    Trainer(config, output_dir).fit()    # train, evaluate, checkpoint, export

The family's task (`tfmask.tasks`) supplies the data, model, loss and
metrics; the trainer only runs them.

XLA (`runtime.jit_compile`): the per-replica step is compiled, the input
iterator is not (an `IteratorGetNext` cannot run inside XLA), as Keras
does. `runtime.steps_per_execution` runs several steps per host call in a
`tf.while_loop` around that step, the usual TPU setting; logging,
evaluation and checkpoints still land on their exact steps, because a call
never runs past the next of them.

The step keeps loss scaling, the cross-replica loss division and gradient
clipping in one place: each replica divides its weighted loss sum by the
*global* weight sum (all-reduced), so the sum of the replicas' gradients is
the gradient of the global weighted mean. That sum is formed *before*
clipping: Keras optimizers clip each replica's partial gradient before they
all-reduce, which makes `mirrored` train differently from one device (and
lets float16 replicas disagree on whether a step overflowed). Clipping here
is by the global norm of the whole gradient, as BERT does.

Exact resume: model variables (dropout seed states included), optimizer
variables and the step are checkpointed; the input pipeline is a pure
function of the seed, so a restarted run skips the batches it has already
consumed and continues with the same data and masks. A run killed and
restarted therefore reaches the same weights as an uninterrupted one.

Several workers (`multi_worker`): each builds its own input over its share
of the examples (`Task.train_for`), every worker restores the chief's
newest checkpoint, and what ends in a collective is decided together (one
all-reduce of four flags per call): a SIGTERM to any worker, a reached
`train.max_seconds` and a timed checkpoint stop or save every worker at
the same step. Under `tpu` and `jit_compile` evaluation batches have one
static shape (`tfmask.tasks.base.full_batches`).
"""

import json
import os
import shutil
import signal
import sys
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from tfmask.data import features as F
from tfmask.errors import ConfigError, Interrupted, RunError, TrainingDiverged
from tfmask.run_folder import ExportFolder, RunFolder, config_text, replace_folder
from tfmask.serving import export_serving
from tfmask.tasks import build_task
from tfmask.training.precision import precision_warning, resolve_precision
from tfmask.training.optimizer import FusedAdamW, summed_rows
from tfmask.training.schedule import WarmupDecay
from tfmask.training.strategy import is_chief, make_strategy, num_workers, worker_index
from tfmask.training.token_buckets import TokenBuckets


def make_optimizer(config, precision):
    """AdamW (fused: `tfmask.training.optimizer`) with the config's schedule;
    loss scaling under mixed_float16."""
    opt = config.optimizer
    schedule = WarmupDecay(opt.learning_rate, config.train.steps, config.schedule.warmup_steps,
                           config.schedule.decay, config.schedule.final_fraction)
    optimizer = FusedAdamW(
        learning_rate=schedule, weight_decay=opt.weight_decay, beta_1=opt.beta_1,
        beta_2=opt.beta_2, epsilon=opt.epsilon,  # clipping: see clip_global_gradients
        # Keras' Embedding tables (token, position, type) are all "embeddings".
        sparse_rows=["embeddings"] if opt.sparse_embedding_update else None)
    # Biases and layer-norm scales are not decayed (BERT's recipe).
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class Trainer:
    """Builds everything for a config and runs it.

    Args:
        config: a resolved `tfmask.config.Config` (`tfmask.tasks.load_config`).
        output_dir: where checkpoints, logs, the resolved config and exports go.
        strategy: optional tf.distribute strategy (default: from the config).
        verbose: print a progress bar and evaluation lines.
    """

    def __init__(self, config, output_dir, strategy=None, verbose=True):
        self.config = config
        self.output_dir = output_dir
        self.verbose = verbose
        self.chief = is_chief()
        keras.utils.set_random_seed(config.train.seed)
        self.strategy = strategy or make_strategy(config.runtime)
        # Resolved once per start, on this machine; config.yaml keeps what the
        # user set (`auto`) and runtime.jsonl records what it became.
        self.precision, self.precision_reason = resolve_precision(config.runtime)
        warning = precision_warning(config.runtime, self.precision)
        if verbose and warning:
            print(f"warning: {warning}")
        replicas = self.strategy.num_replicas_in_sync
        _check_sparse_embedding_update(config, self.precision, replicas)
        if config.data.batch_size % replicas:
            raise ValueError(
                f"data.batch_size={config.data.batch_size} is the global batch and must be "
                f"divisible by the {replicas} replicas; change it.")
        # The folder first: a locked folder or a refused resume costs no work.
        self.folder = folder = RunFolder(output_dir)
        if self.chief:
            folder.acquire()
            try:
                # Resuming is decided by the checkpoint files themselves, never
                # by the `checkpoint` state file, which a crash can damage.
                folder.check_config(config, resuming=bool(folder.checkpoint_steps()),
                                    checkpoint_config=lambda: _config_in_checkpoints(folder))
                self.task = build_task(config)
            except BaseException:
                folder.release()
                raise
        else:
            os.makedirs(output_dir, exist_ok=True)
            self.task = build_task(config)
        with self.strategy.scope():
            self.model = self.task.build_model(dtype=self.precision)
            self.optimizer = make_optimizer(config, self.precision)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            # First step whose loss or gradient norm was NaN/Inf; -1 = none.
            self.first_nonfinite_step = tf.Variable(-1, dtype=tf.int64, trainable=False,
                                                    name="first_nonfinite_step")
            self.train_metrics = self.task.metrics("train")
            self.eval_metrics = self.task.metrics("eval")
        self.checkpoint = tf.train.Checkpoint(
            model_variables=list(self.model.variables),
            optimizer_variables=list(self.optimizer.variables),
            step=self.step,
            # What the resume guard compares against when config.yaml is gone.
            run_config=tf.Variable(config_text(config), trainable=False, name="run_config"),
        )
        if self.chief:
            self._repair_checkpoint_state()
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._checkpoint_dir(), max_to_keep=config.runtime.keep_checkpoints)
        self._stop = None  # the signal flag while fit() runs
        # A TPU compiles one shape per function, and XLA recompiles for each
        # new one: there evaluation batches are filled to full size (the
        # padding-free buckets already bound the shapes XLA sees).
        self.static_shapes = config.runtime.strategy == "tpu" or (
            config.runtime.jit_compile and not self.task.padding_free(config))
        self._evaluation_batches = {}
        self._flush = None  # the compiled flush_sparse_rows, made on first use
        self._train_step = self._make_train_step()
        self._eval_step = self._make_eval_step()
        # Several processes train together: every decision that ends in a
        # collective (stop on a signal, stop on train.max_seconds) is agreed.
        self.workers = num_workers() if config.runtime.strategy == "multi_worker" else 1
        self._agree = self._make_agreement() if self.workers > 1 else None

    # ---------------------------------------------------------------- set-up
    def _checkpoint_dir(self):
        if self.chief:
            return self.folder.checkpoints_dir()
        # Every worker must write (saving is collective); only the chief's copy is kept.
        task_type, index, _ = worker_index()
        return self.folder.checkpoints_dir(worker=(task_type, index))

    def _repair_checkpoint_state(self):
        """Rewrites `checkpoints/checkpoint` from the checkpoint files when it
        is damaged or behind them (a kill between a save and its state
        update), so the manager keeps and prunes the right files."""
        folder, steps = self.folder, self.folder.checkpoint_steps()
        if not steps:
            return
        state = tf.train.get_checkpoint_state(folder.checkpoints_dir())
        newest = folder.checkpoint_path(steps[0])
        if state is not None and os.path.basename(state.model_checkpoint_path) == \
                os.path.basename(newest):
            return
        if state is None and self.verbose:
            print(f"warning: {folder.checkpoints_dir()}/checkpoint was missing or damaged; "
                  f"rebuilt from the checkpoint files (newest: ckpt-{steps[0]}).")
        kept = [folder.checkpoint_path(step) for step in reversed(steps)]
        tf.compat.v1.train.update_checkpoint_state(
            folder.checkpoints_dir(), newest, all_model_checkpoint_paths=kept)

    def _restore(self):
        """Restores the newest intact checkpoint of the chief (every worker
        reads the same one, never a worker's temporary copy); a damaged one is
        skipped with a warning line. Returns its path, or None for a new run."""
        damaged = []
        for step in self.folder.checkpoint_steps():
            path = self.folder.checkpoint_path(step)
            try:
                self.checkpoint.restore(path)
            except (IndexError, ValueError, tf.errors.OpError) as error:
                damaged.append(f"ckpt-{step} ({' '.join(str(error).split())[:120]})")
                continue
            if damaged and self.verbose:
                print(f"warning: damaged checkpoint {', '.join(damaged)} skipped; resuming from "
                      f"ckpt-{step}.")
            return path
        if damaged:
            raise RunError(
                f"every checkpoint in {self.folder.checkpoints_dir()} is damaged "
                f"({', '.join(damaged)}); restore them from a backup, or move the folder aside "
                "and start again.")
        return None

    def _update_metrics(self, metrics, labels, logits, weights):
        for name, metric in metrics.items():
            if name != "loss":
                metric.update_state(labels, logits, weights)

    def _compiled(self, function, batch_size):
        """`function` under XLA when runtime.jit_compile asks; else as it is,
        traced inline into the caller's graph (no function-call boundary).
        A padding-free model under XLA gets one compilation per bucket of
        real-token counts (`tfmask.training.token_buckets`)."""
        config = self.config
        if not config.runtime.jit_compile:
            return function
        if not self.task.padding_free(config):
            return tf.function(function, jit_compile=True)
        per_replica = -(-batch_size // self.strategy.num_replicas_in_sync)
        return TokenBuckets(
            lambda batch: self.task.split_batch(batch)[0][F.PADDING_MASK],
            total_tokens=per_replica * config.data.sequence_length, function=function)

    def _make_train_step(self):
        model, optimizer, strategy, task = self.model, self.optimizer, self.strategy, self.task
        metrics = self.train_metrics

        def replica_step(batch):
            inputs, labels, weights = task.split_batch(batch)
            with tf.GradientTape() as tape:
                logits = model(inputs, training=True)
                local_sum, local_weight = task.loss_terms(labels, logits, weights)
                context = tf.distribute.get_replica_context()
                global_weight = context.all_reduce("sum", local_weight)
                loss = local_sum / tf.maximum(global_weight, 1e-9)
                scaled = optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled, model.trainable_variables)
            gradients, norm = clip_global_gradients(
                gradients, self.config.optimizer.clipnorm, _loss_scale(optimizer),
                return_norm=True, sparse_rows=self.config.optimizer.sparse_embedding_update)
            optimizer.apply(gradients, model.trainable_variables)
            self._update_metrics(metrics, labels, logits, weights)
            return loss, norm

        compiled_step = self._compiled(replica_step, self.config.data.batch_size)
        # float16's loss scaler skips steps with overflowing gradients by
        # design; there only a non-finite loss means the run diverged.
        check_gradients = self.precision != "mixed_float16"

        def one_step(iterator):
            # next() outside the compiled step: XLA cannot run the iterator.
            losses, norms = strategy.run(compiled_step, args=(next(iterator),))
            loss = strategy.reduce("sum", losses, axis=None)
            bad = ~tf.math.is_finite(loss)
            if check_gradients:  # every replica holds the global norm
                bad = bad | ~tf.math.is_finite(strategy.reduce("mean", norms, axis=None))
            first = self.first_nonfinite_step
            first.assign(tf.where(bad & (first < 0), self.step + 1, first))
            metrics["loss"].update_state(loss)
            self.step.assign_add(1)

        def train_steps(iterator, count):
            for _ in tf.range(count):
                one_step(iterator)

        # One step per call (the default) runs without a tf.while_loop around
        # it, the same graph as before steps_per_execution existed.
        single, several = tf.function(one_step), tf.function(train_steps)
        self.step_functions = {"train": single, "train_several": several}  # traces: tests
        return lambda iterator, count: single(iterator) if count == 1 else several(
            iterator, tf.constant(count, tf.int32))

    def _make_eval_step(self):
        model, strategy, metrics, task = self.model, self.strategy, self.eval_metrics, self.task

        def replica_step(batch):
            inputs, labels, weights = task.split_batch(batch)
            if F.EXAMPLE_WEIGHT in batch:  # rows that only fill a batch count 0
                weights = _examples_weighted(weights, labels, batch[F.EXAMPLE_WEIGHT])
            logits = model(inputs, training=False)
            total, weight = task.loss_terms(labels, logits, weights)
            metrics["loss"].update_state(total / tf.maximum(weight, 1e-9), sample_weight=weight)
            self._update_metrics(metrics, labels, logits, weights)

        compiled_step = self._compiled(replica_step, self.config.data.eval_batch_size)
        return tf.function(lambda batch: strategy.run(compiled_step, args=(batch,)))

    def _make_agreement(self):
        """Flags [SIGTERM, SIGINT, out of time, timed save due] -> how many
        replicas of all workers raised each (one all-reduce of four integers):
        a SIGTERM to any worker stops all of them at the same step, with one
        checkpoint; train.max_seconds and runtime.checkpoint_seconds, timed
        by each worker, become one decision."""
        strategy = self.strategy

        @tf.function
        def agree(local):
            values = strategy.run(lambda: tf.identity(local))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None)

        return agree

    def _agreed_stop(self, out_of_time=False, save_due=False, together=True):
        """(signal number or 0, out of time, a timed save due) as every worker
        sees it: each is true when it is true at any worker. `together=False`
        where only this process runs (the chief's export)."""
        signal_number = self._stop.signal_number if self._stop is not None else 0
        if self._agree is None or not together:
            return signal_number, out_of_time, save_due
        handled = _StopSignals.SIGNALS
        local = [int(signal_number == number) for number in handled]
        counts = self._agree(tf.constant(local + [int(out_of_time), int(save_due)],
                                         tf.int32)).numpy()
        signalled = [number for number, count in zip(handled, counts) if count]
        return (int(signalled[0]) if signalled else 0), bool(counts[-2]), bool(counts[-1])

    # ------------------------------------------------------------- running
    def _log(self, record):
        if not self.chief:
            return
        with open(self.folder.metrics_file, "a") as f:
            f.write(json.dumps(record) + "\n")
        with self.writer.as_default(step=record["step"]):
            for key, value in record.items():
                if isinstance(value, float):
                    tf.summary.scalar(key, value)

    def _flush_sparse_rows(self):
        """Rows of a row-sparse embedding update that sat out steps get their
        weight decay (and moments) now, so evaluated and exported weights are
        current; a no-op without optimizer.sparse_embedding_update."""
        if self.config.optimizer.sparse_embedding_update:
            if self._flush is None:
                self._flush = tf.function(self.optimizer.flush_sparse_rows)
            self._flush()

    def evaluate(self, split=None):
        """Metrics on `split` (default: data.eval_split), the task's extra
        evaluation included (BLEU, entity F1), named `eval_*` or `{split}_*`."""
        self._flush_sparse_rows()
        for metric in self.eval_metrics.values():
            metric.reset_state()
        if split not in self._evaluation_batches:
            self._evaluation_batches[split] = self.task.evaluation_for(
                split or self.config.data.eval_split, static_shapes=self.static_shapes)
        # The task already took train.eval_batches and cached them; another
        # take() here would stop before the end and void that cache.
        dataset = self._evaluation_batches[split].with_options(_shard_by_data())
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            self._eval_step(batch)
            self._stop_if_signalled("evaluation")
        prefix = "eval" if split is None else split
        results = {f"{prefix}_{k}": float(m.result()) for k, m in self.eval_metrics.items()}
        results.update(self.task.extra_evaluation(
            self.model, split or self.config.data.eval_split, prefix))
        return results

    def fit(self, reexport=False):
        """Trains to `train.steps` (resuming from the last checkpoint) or until
        `train.max_seconds` of training, evaluates, exports. Returns the final
        evaluation metrics, with `train_steps` and `train_seconds`.

        Safe to interrupt or repeat: the run folder is locked; a resumed run
        must keep the saved config's shaping keys; SIGTERM / SIGINT save a
        checkpoint at the next step boundary (`Interrupted`); a non-finite
        loss or gradient stops the run without saving or exporting
        (`TrainingDiverged`); a finished run is not re-exported unless
        `reexport`."""
        folder = self.folder
        if self.chief and not folder.locked:  # released by an earlier fit()
            folder.acquire()
        try:
            with _StopSignals(verbose=self.verbose) as stop:
                self._stop = stop
                return self._fit(folder, reexport)
        finally:
            self._stop = None
            folder.release()

    def _stop_if_signalled(self, during, together=True):
        """Raises `Interrupted` when SIGTERM / SIGINT arrived (at any worker,
        when `together`); only where the work done so far is already
        checkpointed (the caller's promise)."""
        signal_number, _, _ = self._agreed_stop(together=together)
        if signal_number:
            raise Interrupted(signal_number, int(self.step.numpy()), during)

    def _fit(self, folder, reexport):
        config = self.config
        if self.chief:
            folder.clean_leftovers()
        else:  # a temporary copy a stopped run left; never read back
            shutil.rmtree(self._checkpoint_dir(), ignore_errors=True)
        self._check_data()
        self.writer = tf.summary.create_file_writer(folder.logs_dir)
        restored = self._restore()
        start = int(self.step.numpy())
        if self.chief:
            folder.truncate_metrics(start)
            folder.record_runtime({
                "step": start, "precision": self.precision, "reason": self.precision_reason,
                "strategy": config.runtime.strategy,
                "replicas": self.strategy.num_replicas_in_sync,
                "jit_compile": config.runtime.jit_compile,
                "padding_free": self.task.padding_free(config)})
        if restored and self.verbose:
            print(f"Resumed from {restored} at step {start}.")
        iterator = self._training_input(start)
        progress = Progress(config.train.steps, self.verbose)
        progress.update(start)
        tokens_per_step = self.task.tokens_per_batch
        timed_steps, timed_seconds = 0, 0.0
        self.train_seconds = 0.0  # training only: evaluation and checkpoints excluded
        last_save = time.monotonic()
        every_seconds = _checkpoint_seconds(config)
        step = start
        while step < config.train.steps:
            count = self._steps_in_next_call(step)
            began = time.perf_counter()
            self._train_step(iterator, count)
            spent = time.perf_counter() - began
            self._check_finite()
            step += count
            timed_steps, timed_seconds = timed_steps + count, timed_seconds + spent
            self.train_seconds += spent
            out_of_time = bool(config.train.max_seconds) and \
                self.train_seconds >= config.train.max_seconds
            late = every_seconds and time.monotonic() - last_save >= every_seconds
            signal_number, out_of_time, late = self._agreed_stop(out_of_time, late)
            last = step == config.train.steps or out_of_time
            if step % config.train.log_every == 0 or last:
                record = {"step": step,
                          **{f"train_{k}": float(m.result()) for k, m in self.train_metrics.items()},
                          "learning_rate": float(self.optimizer.learning_rate),
                          "tokens_per_second": tokens_per_step * timed_steps / timed_seconds,
                          "train_seconds": self.train_seconds}
                self._log(record)
                progress.update(step, [("loss", record["train_loss"]),
                                       ("accuracy", record.get("train_accuracy", 0.0)),
                                       ("tokens/s", record["tokens_per_second"])])
                for metric in self.train_metrics.values():
                    metric.reset_state()
                timed_steps, timed_seconds = 0, 0.0
            if config.train.eval_every and step % config.train.eval_every == 0 and not last:
                try:
                    self._report(step, self.evaluate())
                except Interrupted:  # a signal mid-evaluation: save the steps, then stop
                    self.manager.save(checkpoint_number=step)
                    raise
            due = config.runtime.checkpoint_every and step % config.runtime.checkpoint_every == 0
            if due or late or signal_number:
                self.manager.save(checkpoint_number=step)
                last_save = time.monotonic()
            if signal_number:
                raise Interrupted(signal_number, step)
            if out_of_time:
                if self.verbose:
                    print(f"{_after_bar()}train.max_seconds={config.train.max_seconds} reached "
                          f"at step {step}.")
                break
        return self._finish(step, trained=step != start or not restored, reexport=reexport)

    def _finish(self, step, trained, reexport):
        """The final evaluation and export. The trained steps are saved
        first: a signal during either stops the run with exit 128+N and that
        checkpoint, and the rerun evaluates and exports. The final row and
        the export are each redone until they exist for this step."""
        config, folder = self.config, self.folder
        if trained:
            self.manager.save(checkpoint_number=step)
        results = self.evaluate()
        for split in config.train.extra_eval_splits:
            results.update(self.evaluate(split))
        results.update(train_steps=float(step), train_seconds=self.train_seconds)
        self._report(step, results, log=self.chief and not folder.final_row_logged(step))
        if not self.chief:
            shutil.rmtree(self._checkpoint_dir(), ignore_errors=True)
        elif config.runtime.export:
            exported = folder.export.step()
            if reexport or exported != step:
                if self.verbose and exported is not None:
                    print(f"{folder.export.path} holds step {exported}; exporting step {step}.")
                self.export()
            elif self.verbose:
                print(f"{folder.export.path} is already this run's export (step {step}); rerun "
                      "with --reexport to write it again.")
        return results

    def _training_input(self, start):
        """An iterator over the distributed training batches from step
        `start` on (the pipeline is a function of the seed: what was consumed
        is skipped). One worker splits each global batch over its replicas;
        several workers each build their own pipeline over their share of
        the examples (`Task.train_for`), as Model Garden and the Keras guides
        do, instead of every worker reading, tokenizing and masking it all.
        With data.service each pipeline runs on the tf.data service's workers
        as a job of its own, read back in its order (`tfmask.data.service`)."""
        from tfmask.data import service

        def prepared(dataset, pipeline=0):
            dataset = dataset.skip(start) if start else dataset
            if not self.config.data.service:
                return dataset
            return service.distribute(dataset, self.config.data.service,
                                      service.job_name(self.output_dir, start, pipeline))

        if self.workers == 1:
            return iter(self.strategy.experimental_distribute_dataset(
                prepared(self.task.train).with_options(_shard_by_data())))

        def worker_input(context):
            return prepared(self.task.train_for(context), context.input_pipeline_id)

        return iter(self.strategy.distribute_datasets_from_function(worker_input))

    def _check_data(self):
        """Before training: every split the run reads has examples with the
        keys the task needs (one line naming what is missing otherwise)."""
        config = self.config
        # The task checked the training split before training its vocabulary.
        for split in (config.data.eval_split, *config.train.extra_eval_splits):
            self.task.check_documents(split)

    def _check_finite(self):
        bad = int(self.first_nonfinite_step.numpy())
        if bad < 0:
            return
        config = self.config
        hint = ("lower optimizer.learning_rate (it is "
                f"{config.optimizer.learning_rate:g}), set optimizer.clipnorm, or use float32 / "
                "mixed_bfloat16")
        if self.precision == "mixed_float16":
            hint += " (float16 overflowed despite loss scaling)"
        kept = self.manager.latest_checkpoint
        kept = f"the last good checkpoint {kept} is kept" if kept else "no checkpoint was saved"
        raise TrainingDiverged(
            f"the training loss or gradient became NaN/Inf at step {bad}; {kept} and nothing "
            f"was exported; try, in a new --output_dir: {hint}.")

    def _steps_in_next_call(self, step):
        """Up to runtime.steps_per_execution steps, never past the end or the
        next step that logs, evaluates or checkpoints."""
        config = self.config
        count = min(config.runtime.steps_per_execution, config.train.steps - step)
        for every in (config.train.log_every, config.train.eval_every,
                      config.runtime.checkpoint_every):
            if every:
                count = min(count, every - step % every)
        return count

    def _report(self, step, results, log=True):
        if log:
            self._log({"step": step, **results})
        if self.verbose:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in results.items())
            print(f"{_after_bar()}step {step}: {shown}")

    def export(self):
        """`model.keras` (Keras format, reloadable with tfmask imported), a
        SavedModel that serves raw text (`tfmask.serving`: tokenizer, input
        masking and decoding inside), and the vocabulary; written
        into a temporary folder that replaces `export/` only when complete."""
        self._flush_sparse_rows()
        path = self.folder.export.path
        staged = ExportFolder(f"{path}.tmp-{os.getpid()}")  # becomes export/ when complete
        shutil.rmtree(staged.path, ignore_errors=True)
        os.makedirs(staged.path)
        try:
            if self.task.vocabulary_path:  # dense families read no vocabulary
                shutil.copy(self.task.vocabulary_path, staged.vocabulary)
            self.model.save(staged.model)
            self._stop_if_signalled("export", together=False)  # the chief alone exports
            if self.config.runtime.export_saved_model:
                export_serving(self.task, self.model, staged.saved_model)
            # The step it was made from: a rerun redoes an export that is behind.
            staged.write_record(int(self.step.numpy()))
            self._stop_if_signalled("export", together=False)
        except BaseException:
            shutil.rmtree(staged.path, ignore_errors=True)
            raise
        replace_folder(staged.path, path)
        return path


def _after_bar():
    """A line break that ends the progress bar's line, in a terminal only."""
    return "\n" if hasattr(sys.stdout, "isatty") and sys.stdout.isatty() else ""


class Progress:
    """Keras' progress bar in a terminal; in a file (a log, a pipe) one plain
    line per logged step instead, without the bar's escape codes.

    >>> Progress(10, verbose=True, terminal=False).update(5, [("loss", 2.5), ("tokens/s", 1234.5)])
    step 5/10: loss 2.5, tokens/s 1234
    """

    def __init__(self, total, verbose=True, terminal=None):
        if terminal is None:
            terminal = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
        self.total = total
        self.plain = verbose and not terminal
        self.bar = keras.utils.Progbar(total, verbose=1, stateful_metrics=[
            "loss", "accuracy", "tokens/s"]) if verbose and terminal else None

    def update(self, step, values=()):
        if self.bar is not None:
            self.bar.update(step, values)
        elif self.plain and values:
            shown = ", ".join(f"{name} {value:.4g}" if abs(value) < 1000 else
                              f"{name} {value:.0f}" for name, value in values)
            print(f"step {step}/{self.total}: {shown}", flush=True)


class _StopSignals:
    """Turns SIGTERM / SIGINT into a flag the trainer reads where its work is
    checkpointed: step boundaries, evaluation batches, export stages (a
    preempted VM or a scheduler sends SIGTERM). A repeated SIGTERM changes
    nothing (a scheduler may send two; its SIGKILL comes anyway); a second
    Ctrl-C stops at once. Only in the main thread, where Python allows
    handlers."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, verbose=True):
        self.signal_number = 0
        self.verbose = verbose
        self._previous = {}

    def _handle(self, number, frame):
        if not self.signal_number:
            self.signal_number = number
        elif number == signal.SIGINT and self.signal_number == signal.SIGINT:
            signal.default_int_handler(number, frame)  # a second Ctrl-C: stop now
        elif self.verbose:
            print(f"\n{signal.Signals(number).name} again: still saving; stopping at the next "
                  "step boundary.", file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        return False


def _config_in_checkpoints(folder):
    """The config text the newest readable checkpoint carries, or None
    (checkpoints written before it was carried)."""
    for step in folder.checkpoint_steps():
        try:
            value = tf.train.load_variable(folder.checkpoint_path(step),
                                           "run_config/.ATTRIBUTES/VARIABLE_VALUE")
        except (ValueError, tf.errors.OpError, IndexError):
            continue
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    return None


def _checkpoint_seconds(config):
    """runtime.checkpoint_seconds resolved: unset = 600 s (agreed by the
    workers of a multi_worker run); 0 on TPUs, whose hosts time themselves."""
    seconds = config.runtime.checkpoint_seconds
    if seconds is None:
        return 0.0 if config.runtime.strategy == "tpu" else 600.0
    return seconds


def _check_sparse_embedding_update(config, precision, replicas):
    """One line where optimizer.sparse_embedding_update meets a resolved
    precision or strategy that makes the embedding gradient dense (the
    config-only cases are refused by the task's `check`)."""
    if not config.optimizer.sparse_embedding_update:
        return
    if precision == "mixed_float16":
        problem = ("mixed_float16's loss scaling makes the embedding gradient dense; set "
                   "runtime.precision: float32 or mixed_bfloat16")
    elif replicas > 1:
        problem = f"{replicas} replicas sum their gradients densely; train on one device"
    else:
        return
    raise ConfigError(f"optimizer.sparse_embedding_update=true cannot take effect: "
                      f"{problem}, or set it false.")


def clip_global_gradients(gradients, clipnorm, loss_scale=None, return_norm=False,
                          sparse_rows=False):
    """Replica gradients -> what `optimizer.apply` needs for an exact global step.

    Embedding gradients arrive as `IndexedSlices` with one slice per token
    occurrence; they are summed into dense tensors first, because both the
    norm of repeated slices and Adam's square of them would be wrong (and
    differ with how a batch is split over replicas). With several replicas
    the gradients are then summed across them, so the norm is that of the
    global gradient; each replica hands 1/N of the clipped sum to the
    optimizer, whose own all-reduce adds the N copies back up. `loss_scale`
    (float16) is the factor the gradients still carry, so the threshold
    applies to the true gradient. `return_norm` also returns the global norm
    (before clipping; the trainer's NaN guard reads it). A non-finite norm
    leaves the gradients as
    they are, for the loss-scale optimizer to skip the step. `sparse_rows`
    (one replica): embedding slices are summed per row and stay
    `IndexedSlices`, for the optimizer's row-sparse update; same norm.

    Example:
    >>> import tensorflow as tf
    >>> [g] = clip_global_gradients([tf.constant([3.0, 4.0])], clipnorm=1.0)
    >>> [round(float(x), 6) for x in g]
    [0.6, 0.8]
    """
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context else 1
    keep_rows = sparse_rows and replicas == 1
    gradients = [None if g is None else summed_rows(g)
                 if keep_rows and isinstance(g, tf.IndexedSlices) else tf.convert_to_tensor(g)
                 for g in gradients]
    if replicas > 1:
        present = [g for g in gradients if g is not None]
        summed = iter(context.all_reduce("sum", present))
        gradients = [None if g is None else next(summed) for g in gradients]
    factor = tf.constant(1.0 / replicas)
    norm = tf.linalg.global_norm([g for g in gradients if g is not None])
    if clipnorm:
        threshold = clipnorm * (loss_scale if loss_scale is not None else 1.0)
        clip = tf.math.is_finite(norm) & (norm > threshold)
        factor = factor * tf.where(clip, threshold / norm, 1.0)
    clipped = [None if g is None else _scaled(g, tf.cast(factor, g.dtype)) for g in gradients]
    return (clipped, norm) if return_norm else clipped


def _scaled(gradient, factor):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor


def _loss_scale(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return tf.cast(optimizer.dynamic_scale, tf.float32)
    return None


def _examples_weighted(weights, labels, example_weight):
    """A batch's loss weights (None = every label 1) times each example's
    weight, broadcast over the example's positions."""
    if weights is None:
        weights = tf.ones_like(labels, tf.float32)
    weights = tf.cast(weights, tf.float32)
    shape = tf.concat([tf.shape(example_weight), tf.ones([tf.rank(weights) - 1], tf.int32)], 0)
    return weights * tf.reshape(example_weight, shape)


def _shard_by_data():
    """A distributed global batch is split by element (evaluation, and one
    worker's replicas in training): the corpora are one TFRecord per split,
    so file sharding would leave workers without data. Several workers train
    on inputs of their own (`Trainer._training_input`)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def variables_digest(model):
    """A float fingerprint of all model variables (for resume tests)."""
    return float(sum(np.abs(np.asarray(v, np.float64)).sum() for v in model.variables))
