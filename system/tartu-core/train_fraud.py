#!/usr/bin/env python3
"""Train the Tartu bookstore's two small fraud models; write src/fraud_model.json.

Usage: python3 train_fraud.py [OUTPUT]   (default: src/fraud_model.json next to this file)

Pure Python 3 standard library, deterministic: a fixed seed, a fixed number
of full-batch gradient-descent steps, weights rounded to 6 decimals. Running it
again reproduces the JSON byte for byte.

There is no real fraud data in a course project, so the training data is
SYNTHETIC, drawn from the assumptions written below (one function per class
and model). The models therefore encode those assumptions, nothing more: they
are a worked example of the pipeline (features -> logistic score -> threshold),
not evidence about real fraud. The features are computed in Rust by
src/fraud.rs (`user_features`, `card_features`); the names and their order in
the JSON must match those functions (a Rust test checks the names).

The hard rules of src/fraud.rs (digits in the name, disposable email domains,
fraud words, card velocity, amount over the limit) are NOT learned: orders they
catch never reach the model, so the generator only draws orders they let through
(e.g. amounts at most AMOUNT_LIMIT).

Threshold: the smallest of 0.50, 0.51, ..., 0.99 whose false-positive rate on
an independent validation sample of legitimate orders is at most MAX_FPR
(we would rather miss a fraud than refuse more than 1% of honest customers).
"""

import json
import math
import os
import random
import sys

SEED = 20250601
N_TRAIN = 3000  # per model
N_VALID = 3000
FRAUD_RATE = 0.10  # assumed share of fraudulent orders among those that pass the hard rules
STEPS = 2000  # enough: 6000 steps move no weight by more than 0.02 and change no threshold
LEARNING_RATE = 1.5
L2 = 1e-3
MAX_FPR = 0.01
AMOUNT_LIMIT = 50_000  # cents; src/fraud.rs AMOUNT_LIMIT, above it the hard rule rejects

USER_FEATURES = [
    "email_digit_ratio",   # share of digits in the email's local part (0 for a phone contact)
    "email_local_len",     # length of the email's local part / 32, capped at 1 (0 for a phone)
    "contact_is_phone",    # 1 if the contact is a phone number rather than an email address
    "name_single_word",    # 1 if the name is one word
    "name_not_in_email",   # 1 if no word of the name (2+ letters) occurs in the email's local part
    "comment_urgency",     # urgency words in comment and gift message ("urgent", "asap", ...) / 2, capped at 1
    "comment_shouting",    # share of the comment's letters in ALL-CAPS words (0 if fewer than 10 letters)
]

CARD_FEATURES = [
    "amount",              # order amount in cents / AMOUNT_LIMIT, capped at 1
    "country_mismatch",    # 1 if the card's issuing country (BIN table) is known and differs from billing
    "expedited",           # 1 for Next-Day shipping, 0.5 for Express, 0 for Standard
    "max_copies",          # largest quantity of one item line / 10, capped at 1 (resale)
]


def lognormal_cents(rng, median, sigma):
    """An amount drawn log-normally, redrawn until it is within the hard limit."""
    while True:
        a = rng.lognormvariate(math.log(median), sigma)
        if a <= AMOUNT_LIMIT:
            return a


def user_legit(rng):
    # Honest customers: mostly emails with few digits, a name that matches
    # the email, calm comments.
    phone = rng.random() < 0.15
    digits = 0.0 if phone or rng.random() < 0.7 else rng.uniform(0.05, 0.35)
    local_len = 0.0 if phone else min(rng.randint(4, 18) / 32, 1.0)
    single = 1.0 if rng.random() < 0.04 else 0.0
    not_in = 0.0 if phone else (1.0 if rng.random() < 0.35 else 0.0)
    r = rng.random()
    urgency = 0.0 if r < 0.93 else (0.5 if r < 0.98 else 1.0)
    shouting = 0.0 if rng.random() < 0.97 else rng.uniform(0.3, 1.0)
    return [digits, local_len, 1.0 if phone else 0.0, single, not_in, urgency, shouting]


def user_fraud(rng):
    # Fraudsters: throwaway-looking emails (long, many digits) unrelated to
    # the name, one-word names, pressure in the comment.
    phone = rng.random() < 0.10
    digits = 0.0 if phone or rng.random() < 0.3 else rng.uniform(0.2, 0.8)
    local_len = 0.0 if phone else min(rng.randint(6, 32) / 32, 1.0)
    single = 1.0 if rng.random() < 0.30 else 0.0
    not_in = 0.0 if phone else (1.0 if rng.random() < 0.80 else 0.0)
    r = rng.random()
    urgency = 0.0 if r < 0.5 else (0.5 if r < 0.8 else 1.0)
    shouting = 0.0 if rng.random() < 0.7 else rng.uniform(0.3, 1.0)
    return [digits, local_len, 1.0 if phone else 0.0, single, not_in, urgency, shouting]


def expedited(rng, p_next_day, p_express):
    r = rng.random()
    return 1.0 if r < p_next_day else (0.5 if r < p_next_day + p_express else 0.0)


def card_legit(rng):
    # Honest orders: a few books (median 30 EUR), billing in the card's
    # country, mostly standard shipping, one or two copies of a title.
    amount = lognormal_cents(rng, 3000, 0.8) / AMOUNT_LIMIT
    mismatch = 1.0 if rng.random() < 0.03 else 0.0
    ship = expedited(rng, 0.08, 0.20)
    r = rng.random()
    copies = 1 if r < 0.85 else (2 if r < 0.95 else rng.randint(3, 5))
    return [amount, mismatch, ship, min(copies / 10, 1.0)]


def card_fraud(rng):
    # Fraudulent orders: larger (median 180 EUR), often billed abroad,
    # shipped fast, many copies of a title to resell.
    amount = lognormal_cents(rng, 18000, 0.8) / AMOUNT_LIMIT
    mismatch = 1.0 if rng.random() < 0.50 else 0.0
    ship = expedited(rng, 0.50, 0.30)
    copies = rng.randint(1, 10)
    return [amount, mismatch, ship, min(copies / 10, 1.0)]


def sample(rng, n, legit, fraud):
    xs, ys = [], []
    for _ in range(n):
        y = 1 if rng.random() < FRAUD_RATE else 0
        xs.append((fraud if y else legit)(rng))
        ys.append(y)
    return xs, ys


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def fit(xs, ys):
    """Logistic regression by full-batch gradient descent on the mean log loss + L2/2 |w|^2."""
    d = len(xs[0])
    w = [0.0] * d
    b = 0.0
    n = len(xs)
    for _ in range(STEPS):
        gw = [0.0] * d
        gb = 0.0
        for x, y in zip(xs, ys):
            err = sigmoid(b + sum(wi * xi for wi, xi in zip(w, x))) - y
            gb += err
            for i in range(d):
                gw[i] += err * x[i]
        b -= LEARNING_RATE * gb / n
        for i in range(d):
            w[i] -= LEARNING_RATE * (gw[i] / n + L2 * w[i])
    return w, b


def evaluate(w, b, xs, ys, threshold):
    tp = fp = fn = tn = 0
    for x, y in zip(xs, ys):
        p = sigmoid(b + sum(wi * xi for wi, xi in zip(w, x))) > threshold
        if p and y:
            tp += 1
        elif p:
            fp += 1
        elif y:
            fn += 1
        else:
            tn += 1
    return {
        "recall": round(tp / max(tp + fn, 1), 4),
        "precision": round(tp / max(tp + fp, 1), 4),
        "false_positive_rate": round(fp / max(fp + tn, 1), 4),
    }


def train(rng, names, legit, fraud):
    xs, ys = sample(rng, N_TRAIN, legit, fraud)
    vx, vy = sample(rng, N_VALID, legit, fraud)
    w, b = fit(xs, ys)
    w = [round(v, 6) for v in w]
    b = round(b, 6)
    threshold = 0.99
    for t in range(50, 100):
        if evaluate(w, b, vx, vy, t / 100)["false_positive_rate"] <= MAX_FPR:
            threshold = t / 100
            break
    return {
        "features": names,
        "weights": w,
        "bias": b,
        "threshold": threshold,
        "validation": evaluate(w, b, vx, vy, threshold),
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "src", "fraud_model.json")
    rng = random.Random(SEED)
    model = {
        "generator": "train_fraud.py (synthetic data, seed %d; see the script for the assumptions)" % SEED,
        "user": train(rng, USER_FEATURES, user_legit, user_fraud),
        "card": train(rng, CARD_FEATURES, card_legit, card_fraud),
    }
    with open(out, "w", encoding="utf-8") as f:
        f.write(json.dumps(model, indent=2) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
