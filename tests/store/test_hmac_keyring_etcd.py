"""The agents' HMAC keyring in etcd: the first seed wins, a process without one uses etcd's, rotations
made at once by two processes both land, a bad value is named. Real etcd."""

from __future__ import annotations

import asyncio

import pytest

from persys.errors import Invalid, NotFound, Unavailable
from persys.security.keyring import Keyring
from persys.store import Etcd
from persys.store.hmackeys import HMAC_KEYRING_KEY, StoredKeyring

FIRST, SECOND = Keyring.single(b"1" * 64), Keyring.single(b"2" * 64)


async def test_the_first_seed_is_etcds_and_every_process_follows_it(etcd: Etcd) -> None:
    one, two, seedless = StoredKeyring(etcd, FIRST), StoredKeyring(etcd, SECOND), StoredKeyring(etcd, None)
    with pytest.raises(Unavailable, match="no HMAC keyring"):
        seedless.signing()
    with pytest.raises(NotFound, match="etcd holds no agents' HMAC keyring"):
        await seedless.refresh()
    assert await one.refresh() == FIRST
    assert await two.refresh() == FIRST and await seedless.refresh() == FIRST  # etcd's, not their own
    assert two.signing().secret == b"1" * 64


async def test_two_rotations_at_once_both_land(etcd: Etcd) -> None:
    one, two = StoredKeyring(etcd, FIRST), StoredKeyring(etcd, FIRST)
    await one.refresh()
    await asyncio.gather(one.rotate(60), two.rotate(60))
    stored = await one.refresh()
    assert len(stored.keys) == 3 and stored.keys[0].expires is not None
    with pytest.raises(Invalid, match="overlap window"):
        await one.rotate(0)
    assert await two.refresh() == stored  # the refused rotation wrote nothing


async def test_a_bad_stored_keyring_is_named_and_the_last_good_one_kept(etcd: Etcd) -> None:
    keys = StoredKeyring(etcd, FIRST)
    await keys.refresh()
    await etcd.put(HMAC_KEYRING_KEY, b'{"keys": [{"id": "k"}]}')
    with pytest.raises(Invalid, match=f"etcd key {HMAC_KEYRING_KEY}: keys\\[0\\].secret"):
        await keys.refresh()
    assert keys.keyring == FIRST
