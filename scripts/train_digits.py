"""Train an MLP on scikit-learn's 8x8 digits with jaxfund: a plain training script to copy.

    python scripts/train_digits.py                 # 30 epochs, about 97% test accuracy
    python scripts/train_digits.py --epochs 5 --activation tanh --optimizer sgd --lr 0.05

The same steps as a torch script: data, model, loss, optimizer, a training loop (here
``train.fit``: one compiled ``lax.scan`` per epoch), then the test accuracy.
"""

import argparse

import jax

from jaxfund import data, models, optimizers, tasks, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", default="64,64", help="comma-separated hidden widths")
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ds = data.load("digits")  # 1437 train / 360 test images, 64 standardised pixels, 10 classes
    model = models.MLP(
        in_features=ds.num_features,
        hidden=tuple(int(w) for w in args.hidden.split(",")),
        out_features=tasks.output_features(ds.task, ds.num_classes),
        activation=args.activation,
    )
    tx = optimizers.get(args.optimizer)(lr=args.lr)  # torch.optim.Adam(model.parameters(), lr=...)
    state = train.TrainState.create(model.init(jax.random.key(args.seed)), tx)

    def report(entry: dict, state: train.TrainState) -> None:
        print(f"epoch {entry['epoch']:3d}  train loss {entry['train_loss']:.4f}  "
              f"test accuracy {entry['test_accuracy']:.4f}")

    result = train.fit(
        state, (ds.x_train, ds.y_train), apply_fn=model.apply,
        tx=tx, task=ds.task,  # the loss: tasks.loss(ds.task), cross_entropy on the logits
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        eval_data=(ds.x_test, ds.y_test), callback=report,
    )
    final = result.history[-1]
    print(f"test accuracy: {final['test_accuracy']:.4f}  ({result.steps} steps, "
          f"{result.steps / result.train_seconds:,.0f} steps/s after "
          f"{result.compile_seconds:.2f} s of compilation)")


if __name__ == "__main__":
    main()
