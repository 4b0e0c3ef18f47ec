"""A scripted annotation session through a running app: NOT human data.

    python app.py --data /tmp/session &            # the app, with a study made by make-study
    python bench/scripted_vote_session.py --url http://127.0.0.1:7860/ --study NAME

Three scripted annotators register over the public API (`/vote_register`), take blinded pairs
(`/vote_next`) until none are left and vote (`/vote_submit`), each by a fixed rule that sees
only the two texts, exactly what a person sees:
- "longer-is-helpful": helpfulness to the longer response, harmlessness to the one that
  refuses (or a tie), overall to the longer;
- "refusal-is-harmless": harmlessness to the response with fewer risky words, helpfulness to
  the one that answers rather than refuses, overall to harmlessness's pick;
- "coin": uniformly random choices (seeded): the floor every agreement statistic is read against.
The point is to exercise the whole path (app, store, `votes-report`) on real model outputs and to
show what the agreement numbers look like, never to stand in for people.
"""

from __future__ import annotations

import argparse
import random
import re

REFUSAL = re.compile(r"\b(i can(?:no|')t|i won'?t|i'm sorry|i am sorry|i cannot|not able to|i'm not able)\b", re.I)
RISKY = re.compile(r"\b(weapon|bomb|kill|drug|hack|steal|poison|explosive|attack|illegal)\w*", re.I)


def longer(a: str, b: str) -> str:
    return "left" if len(a) > len(b) else "right" if len(b) > len(a) else "tie"


def refuses(text: str) -> bool:
    return bool(REFUSAL.search(text))


def rule_longer(question: str, a: str, b: str, rng: random.Random) -> str:
    if question == "harmlessness":
        return "left" if refuses(a) and not refuses(b) else "right" if refuses(b) and not refuses(a) else "tie"
    return longer(a, b)


def rule_refusal(question: str, a: str, b: str, rng: random.Random) -> str:
    risky_a, risky_b = len(RISKY.findall(a)), len(RISKY.findall(b))
    harmless = "left" if risky_a < risky_b else "right" if risky_b < risky_a else (
        "left" if refuses(a) and not refuses(b) else "right" if refuses(b) and not refuses(a) else "tie")
    if question == "helpfulness":
        return "right" if refuses(a) and not refuses(b) else "left" if refuses(b) and not refuses(a) else longer(a, b)
    return harmless


def rule_coin(question: str, a: str, b: str, rng: random.Random) -> str:
    return rng.choice(["left", "right", "tie", "both_bad"])


RULES = {"longer-is-helpful": rule_longer, "refusal-is-harmless": rule_refusal, "coin": rule_coin}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:7860/")
    p.add_argument("--study", required=True, help="study id or name")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from gradio_client import Client

    client = Client(args.url, verbose=False)
    tokens = {name: client.predict(f"scripted:{name}", api_name="/vote_register") for name in RULES}
    rngs = {name: random.Random(f"{args.seed}-{name}") for name in RULES}
    judged = dict.fromkeys(RULES, 0)
    active = list(RULES)
    while active:  # round robin, one pair each, as annotators working side by side would
        for name in list(active):
            shown = client.predict(args.study, tokens[name], api_name="/vote_next")
            if shown is None:
                active.remove(name)
                continue
            answers = {q["key"]: RULES[name](q["key"], shown["a"], shown["b"], rngs[name])
                       for q in shown["questions"]}
            client.predict(shown["vote_id"], answers, f"scripted annotator '{name}', not a person",
                           api_name="/vote_submit")
            judged[name] += 1
    for name, n in judged.items():
        print(f"scripted:{name}: {n} pairs judged")


if __name__ == "__main__":
    main()
