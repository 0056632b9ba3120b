"""Train a flax.linen model with jaxfund's activations, loss, optimizer and training loop.

    python scripts/train_flax.py                         # digits, 20 epochs
    python scripts/train_flax.py --activation gelu --optimizer adamw --epochs 5

jaxfund's ``train.fit`` only needs ``apply_fn(params, x) -> outputs``, so any flax model
plugs in: here ``apply_fn`` wraps ``module.apply({"params": params}, x)``. Note that
``nn.Dense`` initialises with lecun_normal weights and zero biases, not torch's
``nn.Linear`` uniform init (``jaxfund.models.MLP`` reproduces that one).
"""

import argparse
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax

from jaxfund import activations, data, optimizers, tasks, train


class MLP(nn.Module):
    """Dense -> activation -> ... -> Dense (raw logits)."""

    hidden: Sequence[int]
    out_features: int
    activation: Callable[[jax.Array], jax.Array]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = self.activation(nn.Dense(width)(x))
        return nn.Dense(self.out_features)(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", choices=data.NAMES)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--activation", default="silu")
    parser.add_argument("--optimizer", default="adamw")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ds = data.load(args.dataset)
    module = MLP(hidden=(128, 64), out_features=tasks.output_features(ds.task, ds.num_classes),
                 activation=activations.get(args.activation))
    params = module.init(jax.random.key(args.seed), ds.x_train[:1])["params"]

    def apply_fn(params, x: jax.Array) -> jax.Array:
        return module.apply({"params": params}, x)

    tx = optimizers.get(args.optimizer)(lr=args.lr)
    result = train.fit(
        train.TrainState.create(params, tx), (ds.x_train, ds.y_train), apply_fn=apply_fn,
        tx=tx, task=ds.task, epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, eval_data=(ds.x_test, ds.y_test),
    )
    metric = f"test_{tasks.metric(ds.task)}"
    for entry in result.history:
        print(f"epoch {entry['epoch']:3d}  train loss {entry['train_loss']:.4f}  "
              f"{metric.replace('_', ' ')} {entry[metric]:.4f}")
    print(f"final {metric.replace('_', ' ')}: {result.history[-1][metric]:.4f}")


if __name__ == "__main__":
    main()
