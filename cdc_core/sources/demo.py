"""A built-in generator of the loyalty dataset (`teocalvo/teomewhy-loyalty-system`) that evolves on every fetch.

Version N of every table is a closed-form function of (seed, scale, N): each row's birth, death and update
versions come from a counter-based hash, so any version is generated directly, in O(rows), and
`expected_changes(N)` says exactly what changed between versions N-1 and N without diffing anything.

Shapes follow the real dataset: `;` CSV, no quoting, empty field = NULL, UTC `YYYY-MM-DD HH:MM:SS.fff`
datetimes, UUID ids, numeric-looking string ids in produtos, an all-empty `DescDescricaoProduto`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ..config import TableConfig
from ..errors import SourceError
from .base import Fetch

TABLES = ("clientes", "produtos", "transacoes", "transacao_produto")
VERSION_ZERO_MS = 1_748_736_000_000  # 2025-06-01 00:00:00 UTC: version 1; a new version every 6 hours
VERSION_STEP_MS = 6 * 3600 * 1000
FIRST_CUSTOMER_MS = 1_706_745_600_000  # 2024-02-01 00:00:00 UTC, the real dataset's first DtCriacao
DELETE_RATE = 0.002  # per clientes row and version
PRODUCT_EVERY = 12  # a new product every 12 versions; an existing one is renamed 6 versions later
BASE_PRODUCTS = (
    ("Airflow Lover", "lovers"), ("Batata", "food"), ("Bolo", "food"), ("Cerveja", "food"),
    ("ChatMessage", "chat"), ("Churn_10pp", "churn_model"), ("Churn_2pp", "churn_model"),
    ("Churn_5pp", "churn_model"), ("Coca Cola", "food"), ("Daily Loot", "rpg"), ("Lista de presença", "present"),
    ("Presença Streak", "present"), ("R Lover", "lovers"), ("Reembolso: Troca de Pontos StreamElements",
                                                             "streamelements"),
    ("Resgatar Ponei", "ponei"), ("Torta", "food"), ("Troca de Pontos StreamElements", "streamelements"),
) + tuple((f"Venda de Item: {n} - {item}", "rpg") for n, item in enumerate((
    "Bota das Sombras (200)", "Couraça das Sombras (300)", "Túnica Arcana (500)", "Couraça do Berserker (600)",
    "Espada Curta (150)", "Machado de Batalha (300)", "Adaga (100)", "Martelo de Guerra (400)",
    "Cajado Arcano (250)", "Arco Longo (200)", "Lança (220)", "Maça (280)", "Espada Longa (250)",
    "Adaga Envenenada (150)", "Cajado Sagrado (250)", "Ukulele das Trevas (250)", "Chinélos Místicos (350)",
    "Botas Berserker (450)", "Botas Diversão (450)", "Chapéu da Sombra (150)", "Capacete de Ferro (400)",
    "Chapéu Arcano (300)", "Elmo do Berserker (350)"), start=1)) + (("join failed", "chat"),)
NEW_PRODUCTS = ("Espada Longa", "Armadura de Couro", "Botas de Agilidade", "Cajado de Fogo", "Chapéu do Mago",
                "Escudo de Carvalho", "Anel da Sorte", "Amuleto Arcano")
POINTS = np.array([1, 1, 1, 10, 10, 50, 100, 100, 200, -100, -500, 1000, -1000, 25], dtype=np.int64)

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, element-wise on uint64 (wrap-around is intended)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


class _Hash:
    """Counter-based random numbers: the same (seed, stream, index, …) always gives the same value."""

    def __init__(self, seed: int):
        self.seed = np.uint64(seed)

    def bits(self, stream: int, *keys: np.ndarray | int) -> np.ndarray:
        with np.errstate(over="ignore"):
            x = _mix(np.asarray(self.seed * np.uint64(0x9E3779B97F4A7C15) + np.uint64(stream), dtype=np.uint64))
            for key in keys:
                x = _mix(x ^ (np.asarray(key).astype(np.uint64) * np.uint64(0xD1B54A32D192ED03) & _M64))
        return x

    def uniform(self, stream: int, *keys: np.ndarray | int) -> np.ndarray:
        return (self.bits(stream, *keys) >> np.uint64(11)).astype(np.float64) / float(1 << 53)

    def below(self, n: int | np.ndarray, stream: int, *keys: np.ndarray | int) -> np.ndarray:
        return (self.uniform(stream, *keys) * n).astype(np.int64)

    def uuid(self, stream: int, index: np.ndarray) -> list[str]:
        hi, lo = self.bits(stream, index, 1), self.bits(stream, index, 2)
        out = []
        for a, b in zip(hi.tolist(), lo.tolist()):
            h = f"{a:016x}{b:016x}"
            out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}")
        return out


def _stamp(ms: np.ndarray) -> np.ndarray:
    """UTC milliseconds → 'YYYY-MM-DD HH:MM:SS.fff'."""
    text = np.datetime_as_string(np.asarray(ms, dtype="datetime64[ms]"), unit="ms")
    return np.char.replace(text, "T", " ")


def _table(columns: dict[str, object]) -> pa.Table:
    """An Arrow table of numpy integers, texts and Arrow arrays, each column built from its buffers. `pa.table`
    would first ask whether each value is a pandas object, which imports pandas where it is installed: 0.2 s, a
    fifth of a whole demo capture."""
    return pa.Table.from_arrays([v if isinstance(v, pa.Array) else _column(v) for v in columns.values()],
                                names=list(columns))


def _column(values) -> pa.Array:
    """Integers (int64) or texts: the demo's only kinds (a float or a boolean would need its own CSV form)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        ints = np.ascontiguousarray(values, dtype=np.int64)
        return pa.Array.from_buffers(pa.int64(), len(ints), [None, pa.py_buffer(ints)])
    if isinstance(values, np.ndarray) and values.dtype.kind not in "UO":
        raise TypeError(f"a demo column is integers or texts, not {values.dtype}")
    texts = [str(v).encode() for v in (values.tolist() if isinstance(values, np.ndarray) else values)]
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(t) for t in texts], dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), len(texts),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(texts))])


def version_time_ms(version: int) -> int:
    return VERSION_ZERO_MS + (version - 1) * VERSION_STEP_MS


class DemoSource:
    """The embedded default: the loyalty dataset's four tables, one version further on every fetch."""

    def __init__(self, seed: int = 42, scale: float = 1.0):
        self.seed, self.scale = seed, scale
        self.description = f"demo (seed {seed}, scale {scale:g})"
        self.h = _Hash(seed)
        self.base_clientes = max(10, round(5000 * scale))
        self.new_clientes = max(1, round(30 * scale))
        self.base_transacoes = max(10, round(25000 * scale))
        self.new_transacoes = max(1, round(200 * scale))

    def fetch(self, tables: Sequence[TableConfig], dest: Path, *, last_version: str | None) -> Fetch:
        try:
            version = int(last_version) + 1 if last_version else 1
        except ValueError:
            version = 1  # the last capture came from another source: start the demo afresh
        result = Fetch(version=str(version))
        for table in tables:
            if table.name not in TABLES:
                result.errors[table.name] = SourceError(
                    f'Table "{table.name}" is not in the demo dataset — the demo has {", ".join(TABLES)}; '
                    "remove it from the config or use another source")
                continue
            result.files[table.name] = self.write(table.name, version, dest / f"{table.name}.csv", sep=table.sep)
        return result

    def write(self, name: str, version: int, path: Path, *, sep: str = ";") -> Path:
        """Write version `version` of table `name` as CSV."""
        table = self.table(name, version)
        with open(path, "wb") as out:  # pyarrow quotes the header; the real dataset quotes nothing
            out.write((sep.join(table.column_names) + "\n").encode())
            pacsv.write_csv(table, out, write_options=pacsv.WriteOptions(
                include_header=False, delimiter=sep, quoting_style="none"))
        return path

    def table(self, name: str, version: int) -> pa.Table:
        """Version `version` (≥ 1) of table `name` as an Arrow table of the CSV's columns."""
        if version < 1:
            raise ValueError("demo versions start at 1")
        return getattr(self, f"_{name}")(version)

    # --- clientes: inserts, updates (DtAtualizacao bumped) and deletes -------------------------------------
    def _clientes_schedule(self, version: int):
        n = self.base_clientes + (version - 1) * self.new_clientes
        i = np.arange(n, dtype=np.int64)
        birth = np.where(i < self.base_clientes, 1, 2 + (i - self.base_clientes) // self.new_clientes)
        u = np.maximum(self.h.uniform(1, i), 1e-300)
        death = birth + 1 + np.floor(np.log(u) / np.log1p(-DELETE_RATE)).astype(np.int64)
        period = 8 + self.h.below(73, 2, i)
        phase = self.h.below(period, 3, i)
        return i, birth, death, period, phase

    def _last_update(self, version: int, birth, period, phase) -> np.ndarray:
        last = version - (version + phase) % period
        return np.where(last > birth, last, birth)

    def _clientes(self, version: int) -> pa.Table:
        i, birth, death, period, phase = self._clientes_schedule(version)
        alive = death > version
        i, birth, period, phase = i[alive], birth[alive], period[alive], phase[alive]
        last = self._last_update(version, birth, period, phase)
        h = self.h
        created = np.where(birth == 1,
                           np.where(h.uniform(4, i) < 0.45, FIRST_CUSTOMER_MS,
                                    FIRST_CUSTOMER_MS + h.below(VERSION_ZERO_MS - FIRST_CUSTOMER_MS, 5, i)),
                           version_time_ms(1) + (birth - 1) * VERSION_STEP_MS - h.below(VERSION_STEP_MS, 6, i))
        updated = np.where(last == birth, created,
                           VERSION_ZERO_MS + (last - 1) * VERSION_STEP_MS - h.below(VERSION_STEP_MS, 7, i, last))
        points = np.where(last == birth, h.below(200, 8, i), h.below(45000, 9, i, last))
        flags = {f"fl{name}": (h.uniform(10 + k, i, last if name == "Twitch" else 0) < rate).astype(np.int64)
                 for k, (name, rate) in enumerate((("Email", 0.4), ("Twitch", 0.05), ("YouTube", 0.02),
                                                   ("BlueSky", 0.01), ("Instagram", 0.02)))}
        return _table({"idCliente": self.h.uuid(20, i), **flags, "qtdePontos": points,
                       "DtCriacao": _stamp(created), "DtAtualizacao": _stamp(updated)})

    # --- produtos: mostly unchanged; a new product every 12 versions, a rename 6 versions later ------------
    def _produtos(self, version: int) -> pa.Table:
        names = [name for name, _ in BASE_PRODUCTS]
        cats = [cat for _, cat in BASE_PRODUCTS]
        ids = [str(k) for k in range(1, len(names) + 1)]
        for k in range(1, version // PRODUCT_EVERY + 1):
            item = NEW_PRODUCTS[(k - 1) % len(NEW_PRODUCTS)]
            ids.append(f"{k:03d} - {item}")
            names.append(item)
            cats.append(item.split()[0].lower())
        for k in range(1, (version + PRODUCT_EVERY // 2) // PRODUCT_EVERY + 1):  # renamed at 6, 18, 30, …
            renamed = int(self.h.below(len(BASE_PRODUCTS), 30, k)[()])
            names[renamed] = f"{BASE_PRODUCTS[renamed][0]} (v{k + 1})"
        return _table({"IdProduto": ids, "DescNomeProduto": names,
                       "DescDescricaoProduto": pa.nulls(len(ids), pa.string()), "DescCategoriaProduto": cats})

    def _product_count(self, version: int) -> int:
        return len(BASE_PRODUCTS) + version // PRODUCT_EVERY

    # --- transacoes + transacao_produto: append-only ---------------------------------------------------------
    def _transactions(self, version: int):
        j = np.arange(self.base_transacoes + (version - 1) * self.new_transacoes, dtype=np.int64)
        birth = np.where(j < self.base_transacoes, 1, 2 + (j - self.base_transacoes) // self.new_transacoes)
        return j, birth

    def _transacoes(self, version: int) -> pa.Table:
        j, birth = self._transactions(version)
        h = self.h
        known = self.base_clientes + (birth - 1) * self.new_clientes
        created = np.where(birth == 1, FIRST_CUSTOMER_MS + h.below(VERSION_ZERO_MS - FIRST_CUSTOMER_MS, 40, j),
                           VERSION_ZERO_MS + (birth - 1) * VERSION_STEP_MS - h.below(VERSION_STEP_MS, 41, j))
        return _table({"IdTransacao": h.uuid(42, j), "IdCliente": h.uuid(20, h.below(known, 43, j)),
                       "DtCriacao": _stamp(created), "QtdePontos": POINTS[h.below(len(POINTS), 44, j)],
                       "DescSistemaOrigem": np.where(h.uniform(45, j) < 0.8, "twitch", "cursos")})

    def _transacao_produto(self, version: int) -> pa.Table:
        j, birth = self._transactions(version)
        h = self.h
        products = len(BASE_PRODUCTS) + birth // PRODUCT_EVERY
        pick = h.below(products, 50, j)
        ids = np.array([str(k) for k in range(1, len(BASE_PRODUCTS) + 1)]
                       + [f"{k:03d} - {NEW_PRODUCTS[(k - 1) % len(NEW_PRODUCTS)]}"
                          for k in range(1, version // PRODUCT_EVERY + 1)], dtype=object)
        return _table({"idTransacaoProduto": h.uuid(51, j), "IdTransacao": h.uuid(42, j),
                       "IdProduto": ids[pick].tolist(), "QtdeProduto": np.ones(len(j), dtype=np.int64),
                       "vlProduto": np.abs(POINTS[h.below(len(POINTS), 44, j)])})

    # --- the oracle -------------------------------------------------------------------------------------------
    def expected_changes(self, version: int) -> dict[str, dict[str, int]]:
        """Inserts, updates and deletes per table between versions `version - 1` and `version`, from the schedule."""
        if version < 2:
            raise ValueError("changes start at version 2")
        _, birth, death, period, phase = self._clientes_schedule(version)
        inserted = (birth == version) & (death > version)
        deleted = (death == version) & (birth < version)
        both = (birth < version) & (death > version)
        updated = both & (self._last_update(version, birth, period, phase) == version)
        renamed = int(version % PRODUCT_EVERY == PRODUCT_EVERY // 2)
        return {
            "clientes": {"I": int(inserted.sum()), "U": int(updated.sum()), "D": int(deleted.sum())},
            "produtos": {"I": self._product_count(version) - self._product_count(version - 1), "U": renamed, "D": 0},
            "transacoes": {"I": self.new_transacoes, "U": 0, "D": 0},
            "transacao_produto": {"I": self.new_transacoes, "U": 0, "D": 0},
        }
