"""Helpers that call LiteLLM through aliases and partials; callers decide the tenant."""
import functools

import litellm as ll
from litellm import acompletion as ac

fast = functools.partial(ll.completion, model="gpt-4o-mini")


def ask(question):
    return ll.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])  # expect: GT102


def ask_fast(question):
    return fast(messages=[{"role": "user", "content": question}])  # expect: GT102


async def ask_async(question):
    return await ac(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])  # expect: GT102


def ask_attributed(question):
    return ll.completion(model="gpt-4o-mini", messages=[])  # clean: GT102 (every caller is attributed)


def library_api(question):
    return ll.completion(model="gpt-4o-mini", messages=[])  # expect: GT102 (from a script and a web handler)


def unused_api(question):
    return ll.completion(model="gpt-4o-mini", messages=[])  # clean: GT102 (no caller in the tree: not ours to judge)


def worker(question):
    return ll.completion(model="gpt-4o-mini", messages=[])  # expect: GT102
