"""The course's practical exercise in jaxfund: one network, trained with each activation.

The course trains ``Linear(20, 50) -> activation -> Linear(50, 2)`` with Adam (lr 1e-3) and
``CrossEntropyLoss`` on ``make_classification(n_samples=1000, n_features=20, n_classes=2,
random_state=42)`` (80/20 split, standardised), full batch, for 20 epochs, then prints the
test accuracy. Here the same network is trained once per activation. Unlike the course's
solution, no softmax is applied before the loss: ``cross_entropy`` takes logits (applying
softmax first, as the course does, squashes the gradients).

    python scripts/course_exercise.py               # the course's 20 full-batch steps
    python scripts/course_exercise.py --epochs 200  # long enough to see the differences
"""

import argparse

import jax

from jaxfund import data, models, optimizers, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--activations", default="identity,sigmoid,tanh,relu,leaky_relu,gelu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ds = data.load("classification")
    x_train, y_train = ds.x_train, ds.y_train
    print(f"{'activation':<12} {'final train loss':>16} {'test accuracy':>14}")
    for activation in args.activations.split(","):
        # Two logits and cross_entropy, like the course's nn.Linear(50, 2) + CrossEntropyLoss.
        model = models.MLP(ds.num_features, (args.hidden,), 2, activation)
        tx = optimizers.adam(lr=args.lr)
        state = train.TrainState.create(model.init(jax.random.key(args.seed)), tx)
        result = train.fit(
            state, (x_train, y_train), apply_fn=model.apply, tx=tx,
            task="multiclass",  # the loss: tasks.loss("multiclass"), cross_entropy on logits
            epochs=args.epochs, batch_size=len(x_train),  # full batch, as in the course
            seed=args.seed, eval_data=(ds.x_test, ds.y_test),
        )
        final = result.history[-1]
        print(f"{activation:<12} {final['train_loss']:>16.4f} {final['test_accuracy']:>14.2%}")


if __name__ == "__main__":
    main()
