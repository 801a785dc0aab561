#!/usr/bin/env python3
"""Scaling model of the distributed RDM (issue 13, item 6) for K H200s: time, parallel efficiency and memory per rank.

Three plans, K = 1, 2, 4, 8, 16 GPUs (one rank per GPU, GPUS_PER_NODE to a node), at S = 73,000 x N = 100,000 and
S = 10,000 x N = 1,000,000 (float32 responses in one .npy file, the S x S float32 RDM into one .npy file):

  rows           row-split as the engine (host/distributed_rdm.cpp) runs it when a rank's rows fit half its host
                 memory: the upper triangle of side x side tiles of T rows, in Morton (Z-order) order of (bi, bj),
                 bi <= bj, cut into K contiguous runs by cumulative cost (a diagonal tile costs half); each rank reads
                 its own S/K rows from the file (the row statistics) and keeps them, receives the other rows of its
                 distinct row blocks once from their owners (Comm::exchange_rows: MPI point-to-point through host
                 memory; within a node at HOST_MPI_GBPS, across nodes over InfiniBand), so the file is read once in
                 all; then per band group uploads its blocks to the GPU (PCIe), computes its tiles (GEMM, SYRK on the
                 diagonal) and writes its tiles and their mirrors into the shared output.
  rows (file)    the engine's fallback when those rows do not fit: every band group (a row band bi and as many of its
                 column blocks as fit a quarter of the rank's memory) reads its blocks from the file again.
  neurons        neuron-split: each rank reads its N/K columns of all S rows, computes its partial S x S Gram matrix
                 (SYRK: S^2 N / (2K) multiply-adds), the partials are summed on rank 0 (ncclReduce of S x S floats)
                 and rank 0 writes the RDM. Memory per rank: its columns plus the RDM and its partial sum (the engine's plan).

Columns: the slowest rank's phases, the longest time a rank's GPU waits for row blocks still in the exchange, tiles,
distinct row blocks and bytes loaded (from the file, or from the file and the other ranks for rows), bytes written;
the largest memory over the ranks against the usable memory.
The row-split plans are simulated tile by tile (the engine's assignment for the given S, N, K), not from a formula.
Three times per rank: the SUM of its phases (read, exchange, upload to the GPU, z-score pass, compute, reduce, write:
no overlap, the conservative bound); `overlap`, the MAX of the phases (perfect overlap, the optimistic bound); and
`engine`, the phases overlapped as the engine overlaps them (engine_time: the row-split simulated tile by tile, its
exchange running while the tiles run, a band group waiting only for its own row blocks, the tile writes behind the
next tiles' products; everything else in sequence), which the verdict uses.
A run takes as long as its slowest rank. E(K) = T(1) / (K T(K)), T(1) the best one-GPU time in the same time model:
the plain one-GPU rdm (no launcher: the input read once, the RDM computed whole and written once) or any plan on one
rank, whichever is faster; the same baseline for every plan.

Every assumption is a named constant below with its source; the machine's figures can be overridden by flags.
Standard library only: python3 bench/scaling_model.py [--fs-read-gbps 5 --nvlink-gbps 450 ...] > table.md
"""
import argparse
import math
import sys

# ---------------------------------------------------------------- assumptions (each with its source)
# shared/spec/performance.md, "Hardware limits": H200 dense rates and memory.
H200_FP32_TFLOPS = 66.9          # FP32 FFMA peak
H200_TF32_TFLOPS = 495.0         # TF32 tensor-core peak (dense)
H200_HBM_COPY_GBPS = 4300.0      # HBM3e, "about 4.3 measured copy" (4.8 TB/s nominal)
H200_MEMORY_GB = 141.0           # device memory per card
# Fraction of the card's memory a plan may use: the CUDA context, cuBLAS workspace and NCCL's buffers take the rest
# (the engine's own rdm_memory leaves a similar margin). Assumption.
MEMORY_USABLE_FRACTION = 0.90
# Fraction of peak reached by the tile products. performance.md's targets: FP32 within 1.15x of the FP32 floor
# (1 / 1.15 = 0.87), TF32 within 2 ms of a 1.0 ms floor (0.5).
FP32_FRACTION = 1 / 1.15
TF32_FRACTION = 0.5
# Per-GPU file-system bandwidth (assumption, overridable): a parallel file system or node-local NVMe RAID giving
# ~40 GB/s read and ~24 GB/s write per 8-GPU node, i.e. 5 and 3 GB/s per GPU, scaling with the number of GPUs unless
# --fs-aggregate-gbps caps the total.
FS_READ_GBPS = 5.0
FS_WRITE_GBPS = 3.0
FS_AGGREGATE_GBPS = 0.0          # 0: no cap on the sum over the GPUs
# Interconnect (assumption, overridable): NVLink 4 within an HGX H200 node, ~450 GB/s per direction per GPU;
# InfiniBand NDR, one 400 Gb/s port per GPU = 50 GB/s per GPU across nodes.
NVLINK_GBPS = 450.0
IB_GBPS = 50.0
GPUS_PER_NODE = 8                # HGX H200: 8 GPUs per node (K = 16 is two nodes)
# The row exchange goes through host memory (MPI point-to-point between processes on a node: shared-memory copies;
# assumption: 20 GB/s per rank, a DDR5 node's bandwidth shared by its 8 ranks), and the GPU reads host rows over
# PCIe Gen5 x16 (assumption: 50 GB/s per GPU, ~80% of the link).
HOST_MPI_GBPS = 20.0
PCIE_GBPS = 50.0
COLLECTIVE_LATENCY_S = 20e-6     # per ring step of a collective (NCCL small-message latency, order of magnitude)
# Row tile: the engine's rule (host/distributed_rdm.cpp plan_distributed_rdm), reproduced in engine_tile: the
# smallest grid side with >= 4 upper-triangle tiles per rank, T = ceil(S / side), capped by the GPU's tiled-plan row
# limit (--tile; unknown without the card, none by default) and halved until two row blocks fit a band group's cap
# (a quarter of the rank's memory).
BYTES = 4                        # float32 in and out
TARGET_K = 8
TARGET_EFFICIENCY = 0.80

PROBLEMS = [(73_000, 100_000), (10_000, 1_000_000)]
RANKS = [1, 2, 4, 8, 16]
PLANS = ["rows", "rows (file)", "neurons"]


def morton(i, j):
    """Z-order key of (i, j): bits of i and j interleaved (i in the odd bits; host/distributed_rdm.cpp morton_key)."""
    key = 0
    for b in range(32):
        key |= ((j >> b) & 1) << (2 * b) | ((i >> b) & 1) << (2 * b + 1)
    return key


def tile_assignment(side, K):
    """The engine's split (assign_upper_tiles): upper-triangle tiles of a side x side grid in Morton order, cut into
    K contiguous runs: a tile goes to the first rank whose share (r + 1) C / K of the total cost C is at least the
    tile's cost midpoint (a diagonal tile costs half)."""
    tiles = sorted(((bi, bj) for bi in range(side) for bj in range(bi, side)), key=lambda t: morton(*t))
    total = side * (side - 1) / 2 + 0.5 * side
    ranks = [[] for _ in range(K)]
    done, r = 0.0, 0
    for bi, bj in tiles:
        c = 0.5 if bi == bj else 1.0
        middle = done + c / 2
        while r + 1 < K and middle > total * (r + 1) / K:
            r += 1
        ranks[r].append((bi, bj))
        done += c
    return ranks


def rows_of(b, S, T):
    return min(T, S - b * T)


def rank_rows(S, r, K):
    """rank_range(S, r, K).count: contiguous shares differing by at most one."""
    return S // K + (1 if r < S % K else 0)


class Machine:
    def __init__(self, a):
        self.fs_read = a.fs_read_gbps * 1e9
        self.fs_write = a.fs_write_gbps * 1e9
        self.fs_aggregate = a.fs_aggregate_gbps * 1e9
        self.nvlink = a.nvlink_gbps * 1e9
        self.ib = a.ib_gbps * 1e9
        self.memory = a.memory_gb * 1e9 * MEMORY_USABLE_FRACTION
        self.rate = {"fp32": H200_FP32_TFLOPS * 1e12 * a.fp32_fraction,
                     "tf32": H200_TF32_TFLOPS * 1e12 * a.tf32_fraction}
        self.hbm = H200_HBM_COPY_GBPS * 1e9
        self.host_mpi = a.host_mpi_gbps * 1e9
        self.pcie = a.pcie_gbps * 1e9
        self.tile_limit = a.tile

    def read_bw(self, K):
        return min(self.fs_read, self.fs_aggregate / K) if self.fs_aggregate else self.fs_read

    def write_bw(self, K, writers):
        return min(self.fs_write, self.fs_aggregate / writers) if self.fs_aggregate else self.fs_write

    def link(self, K):
        """Bandwidth of the slowest link a collective over K GPUs crosses."""
        return self.nvlink if K <= GPUS_PER_NODE else self.ib

    def exchange_bw(self, K):
        """The row exchange's bandwidth per rank: host-memory MPI within a node, InfiniBand across nodes."""
        return self.host_mpi if K <= GPUS_PER_NODE else min(self.host_mpi, self.ib)


def group_input_cap(m):
    """The part of a rank's memory one band group's input may take (host/distributed_rdm.cpp group_input_cap)."""
    return max(m.memory / 4, 64 * 2**20)


def engine_tile(S, N, K, m):
    """The engine's row tile (plan_distributed_rdm): the smallest grid side giving >= 4 tiles per rank, T = S / side,
    capped by the GPU's tiled-plan limit (--tile here; 0: none) and halved until two row blocks fit the group cap."""
    side = 1
    while side * (side + 1) // 2 < 4 * K and side < S:
        side += 1
    T = -(-S // side)
    if m.tile_limit:
        T = min(T, m.tile_limit)
    while T > 1 and 2 * T * N * BYTES > group_input_cap(m):
        T = -(-T // 2)
    return T


def band_groups(tiles, T, N, m):
    """The engine's band groups: a rank's tiles by row band bi, each band's column blocks in runs that fit the cap."""
    bands = {}
    for bi, bj in tiles:
        bands.setdefault(bi, []).append(bj)
    per_group = max(1, int(group_input_cap(m) // (T * N * BYTES)) - 1)
    groups = []
    for bi in sorted(bands):
        bjs = sorted(bands[bi])
        groups += [(bi, bjs[at:at + per_group]) for at in range(0, len(bjs), per_group)]
    return groups


def needed_rows(tiles, S, T):
    """The rows of a rank's distinct row blocks, as (first, end) ranges."""
    return [(b * T, min(S, (b + 1) * T)) for b in sorted({b for t in tiles for b in t})]


def compute_order(tiles, T, N, m, S, own_lo, own_hi):
    """The engine's order of a rank's band groups (host/distributed_rdm.cpp compute_order): the groups whose row
    blocks all lie within the rank's own rows first, then the rest in band order."""
    groups = band_groups(tiles, T, N, m)
    def local(g):
        bi, bjs = g
        return all(b * T >= own_lo and b * T + rows_of(b, S, T) <= own_hi for b in [bi] + bjs)
    return [g for g in groups if local(g)] + [g for g in groups if not local(g)]


def pipeline_time(groups, S, N, T, m, precision, K, start, arrival):
    """The engine's tile pipeline on one rank, tile by tile: a band group starts when the GPU is free and its row
    blocks have arrived (arrival[b], seconds), uploads and z-scores its blocks, then computes its tiles one after
    another; the host writes each tile (and its mirror) into the output while the next tiles compute, through the
    tiled plan's two read-back buffers (tile k's product waits for tile k - 2's write). Returns (end, GPU waiting)."""
    gpu, waited = start, 0.0
    writes = []                     # end of each tile's write, in order
    for bi, bjs in groups:
        blocks = [bi] + [b for b in bjs if b != bi]
        ready = max(arrival[b] for b in blocks)
        waited += max(0.0, ready - gpu)
        gpu = max(gpu, ready)
        rows = sum(rows_of(b, S, T) for b in blocks)
        gpu += rows * N * BYTES / m.pcie + 2 * rows * N * BYTES / m.hbm
        for bj in bjs:
            ti, tj = rows_of(bi, S, T), rows_of(bj, S, T)
            macs = ti * (ti + 1) // 2 * N if bi == bj else ti * tj * N
            if len(writes) >= 2:
                gpu = max(gpu, writes[-2])
            gpu += 2 * macs / m.rate[precision]
            written = (1 if bi == bj else 2) * ti * tj * BYTES
            writes.append(max(gpu, writes[-1] if writes else 0.0) + written / m.write_bw(K, K))
    return max(gpu, writes[-1] if writes else gpu), waited


def rows_plan(S, N, K, m, precision, exchange):
    """Per-rank phases of the row-split as the engine runs it, simulated for the actual S, N, K: the statistics pass
    reads the rank's own S/K rows; with the exchange (plan "rows") the rank keeps them and receives the rest of its
    distinct row blocks from their owners once, in the order it uses them, while its tiles run (a band group waits
    only for its own blocks; the groups on the rank's own rows go first); without it ("rows (file)") every band group
    reads its band's block and its other column blocks from the file before its tiles. Either way every band group
    uploads its blocks to the GPU. `engine` is the tile-by-tile pipeline (pipeline_time)."""
    T = engine_tile(S, N, K, m)
    side = -(-S // T)
    ranks = []
    first = 0
    for r, tiles in enumerate(tile_assignment(side, K)):
        own_rows = rank_rows(S, r, K)
        own_lo, own_hi = first, first + own_rows
        first += own_rows
        own = own_rows * N * BYTES
        groups = compute_order(tiles, T, N, m, S, own_lo, own_hi)
        group_rows, largest = 0, 0
        for bi, bjs in groups:
            rows = rows_of(bi, S, T) + sum(rows_of(bj, S, T) for bj in bjs if bj != bi)
            group_rows += rows
            largest = max(largest, rows)
        loads = group_rows * N * BYTES                       # uploaded to the GPU (and read from the file without exchange)
        tile_macs = sum(rows_of(i, S, T) * rows_of(j, S, T) * N if i != j
                        else rows_of(i, S, T) * (rows_of(i, S, T) + 1) // 2 * N for i, j in tiles)
        written = sum((2 if i != j else 1) * rows_of(i, S, T) * rows_of(j, S, T) * BYTES for i, j in tiles)
        need = needed_rows(tiles, S, T)
        need_rows = sum(e - a for a, e in need)
        mine = sum(max(0, min(e, own_hi) - max(a, own_lo)) for a, e in need)
        if exchange:
            read_s = own / m.read_bw(K)
            received = (need_rows - mine) * N * BYTES
            latency = (K - 1) * COLLECTIVE_LATENCY_S if K > 1 else 0.0
            exch_s = (received / m.exchange_bw(K) + latency) if K > 1 else 0.0
            memory = (own_rows + need_rows + largest) * N * BYTES + 2 * T * T * BYTES   # host memory
            loaded = own + received
            # Arrivals: the blocks in the order of first use, each after the ones before it (the rank's receive
            # bandwidth is the limit), starting when the row statistics are in.
            arrival, t, seen = {}, read_s + latency, set()
            for bi, bjs in groups:
                for b in [bi] + [x for x in bjs if x != bi]:
                    if b in seen:
                        continue
                    seen.add(b)
                    a, e = b * T, b * T + rows_of(b, S, T)
                    foreign = (e - a) - max(0, min(e, own_hi) - max(a, own_lo))
                    t += foreign * N * BYTES / m.exchange_bw(K)
                    arrival[b] = t if foreign else read_s
            end, waited = pipeline_time(groups, S, N, T, m, precision, K, read_s, arrival)
        else:
            read_s, exch_s = (own + loads) / m.read_bw(K), 0.0
            memory = largest * N * BYTES + 2 * T * T * BYTES
            loaded = own + loads
            # Every group reads its blocks from the file before its tiles (in the main thread).
            end, waited = own / m.read_bw(K), 0.0
            for g in groups:
                blocks = [g[0]] + [x for x in g[1] if x != g[0]]
                g_end, _ = pipeline_time([g], S, N, T, m, precision, K,
                                         end + sum(rows_of(b, S, T) for b in blocks) * N * BYTES / m.read_bw(K),
                                         {b: 0.0 for b in blocks})
                end = g_end
        phases = {"read": read_s, "exchange": exch_s, "upload": loads / m.pcie, "zscore": 2 * loads / m.hbm,
                  "compute": 2 * tile_macs / m.rate[precision], "reduce": 0.0, "write": written / m.write_bw(K, K)}
        ranks.append({"T": T, "tiles": len(tiles), "blocks": len({b for t in tiles for b in t}), "macs": tile_macs,
                      "read_bytes": loaded, "written": written, "memory": memory, "phases": phases,
                      "engine": end, "waited": waited})
    return ranks


def single_gpu(S, N, m, precision):
    """T(1): the plain one-GPU rdm (no launcher): the input read once, the whole RDM computed, written once."""
    phases = {"read": S * N * BYTES / m.read_bw(1), "exchange": 0.0,
              "upload": (S * N * BYTES + S * S * BYTES) / m.pcie, "zscore": 2 * S * N * BYTES / m.hbm,
              "compute": 2 * S * (S + 1) / 2 * N / m.rate[precision], "reduce": 0.0,
              "write": S * S * BYTES / m.write_bw(1, 1)}
    return [{"T": S, "tiles": 1, "blocks": 1, "macs": S * (S + 1) // 2 * N, "read_bytes": S * N * BYTES,
             "written": S * S * BYTES, "memory": S * N * BYTES + S * S * BYTES, "phases": phases}]


def neurons_plan(S, N, K, m, precision):
    cols = -(-N // K)
    macs = S * (S + 1) // 2 * cols
    gram = S * S * BYTES
    input_bytes = S * cols * BYTES
    if K == 1:
        reduce_s = 0.0
    elif K <= GPUS_PER_NODE:   # ring reduce: the data crosses each NVLink once, pipelined
        reduce_s = gram / m.nvlink + (K - 1) * COLLECTIVE_LATENCY_S
    else:                      # hierarchical: within each node over NVLink, then across nodes over InfiniBand
        reduce_s = gram / m.nvlink + gram / m.ib + (K - 1) * COLLECTIVE_LATENCY_S
    ranks = []
    for r in range(K):
        phases = {"read": input_bytes / m.read_bw(K), "exchange": 0.0,
                  "upload": (input_bytes + gram) / m.pcie, "zscore": 2 * input_bytes / m.hbm,
                  "compute": 2 * macs / m.rate[precision], "reduce": reduce_s,
                  "write": gram / m.write_bw(K, 1) if r == 0 else 0.0}
        ranks.append({"T": 0, "tiles": 1, "blocks": 0, "macs": macs, "read_bytes": input_bytes,
                      "written": gram if r == 0 else 0, "memory": input_bytes + 2 * gram, "phases": phases})
    return ranks


def run_plan(plan, S, N, K, m, precision):
    if plan == "neurons":
        return neurons_plan(S, N, K, m, precision)
    return rows_plan(S, N, K, m, precision, exchange=(plan == "rows"))


def engine_time(rank):
    """A rank's time as the engine overlaps its phases: the row-split's tile pipeline as simulated by rows_plan
    (reads, the exchange as the tiles run, uploads, products and the writes behind them); the single-GPU one-shot RDM
    and the neuron-split run their phases one after another."""
    if "engine" in rank:
        return rank["engine"]
    return sum(rank["phases"].values())


def summary(ranks):
    total = max(sum(r["phases"].values()) for r in ranks)
    overlap = max(max(r["phases"].values()) for r in ranks)
    engine = max(engine_time(r) for r in ranks)
    slowest = max(ranks, key=lambda r: sum(r["phases"].values()))
    return total, overlap, slowest, engine


def gb(x):
    return x / 1e9


def baseline(S, N, m, precision):
    """T(1) for each time model: the faster of the plain one-GPU rdm and any plan run on one rank (a 1-rank row-split
    overlaps its writes, which the plain run does not: the best one-GPU time is the fair baseline)."""
    runs = [summary(single_gpu(S, N, m, precision))] + [summary(run_plan(p, S, N, 1, m, precision)) for p in PLANS]
    return min(r[0] for r in runs), min(r[1] for r in runs), min(r[3] for r in runs)


def efficiency_at(plan, S, N, m, precision, K):
    """(phases summed, phases overlapped, as the engine overlaps them)."""
    t1, o1, e1 = baseline(S, N, m, precision)
    tk, ok, _, ek = summary(run_plan(plan, S, N, K, m, precision))
    return t1 / (K * tk), o1 / (K * ok), e1 / (K * ek)


def needed_read_bandwidth(plan, S, N, args, precision):
    """The per-GPU file-system read bandwidth (GB/s) at which E(TARGET_K) (sum of phases) reaches the target, or
    None when no read bandwidth up to 100 TB/s does."""
    def eff(bw):
        a = argparse.Namespace(**vars(args))
        a.fs_read_gbps = bw
        return efficiency_at(plan, S, N, Machine(a), precision, TARGET_K)[2]
    lo, hi = 0.01, 1e5
    if eff(hi) < TARGET_EFFICIENCY:
        return None
    if eff(lo) >= TARGET_EFFICIENCY:
        return lo
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if eff(mid) >= TARGET_EFFICIENCY else (mid, hi)
    return hi


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fs-read-gbps", type=float, default=FS_READ_GBPS, help="file-system read GB/s per GPU")
    p.add_argument("--fs-write-gbps", type=float, default=FS_WRITE_GBPS, help="file-system write GB/s per GPU")
    p.add_argument("--fs-aggregate-gbps", type=float, default=FS_AGGREGATE_GBPS,
                   help="cap on the file system's total GB/s over all GPUs (0: none)")
    p.add_argument("--nvlink-gbps", type=float, default=NVLINK_GBPS, help="NVLink GB/s per GPU per direction")
    p.add_argument("--ib-gbps", type=float, default=IB_GBPS, help="InfiniBand GB/s per GPU across nodes")
    p.add_argument("--host-mpi-gbps", type=float, default=HOST_MPI_GBPS,
                   help="the row exchange's GB/s per rank within a node (MPI through host memory)")
    p.add_argument("--pcie-gbps", type=float, default=PCIE_GBPS, help="host-to-GPU GB/s per GPU")
    p.add_argument("--memory-gb", type=float, default=H200_MEMORY_GB, help="device memory per GPU (GB)")
    p.add_argument("--fp32-fraction", type=float, default=FP32_FRACTION, help="fraction of FP32 peak reached")
    p.add_argument("--tf32-fraction", type=float, default=TF32_FRACTION, help="fraction of TF32 peak reached")
    p.add_argument("--tile", type=int, default=0,
                   help="the GPU's tiled-plan row limit on the row-split's tile (0: none; the engine's rule otherwise)")
    p.add_argument("--problem", action="append", default=[], metavar="SxN",
                   help="problem size (repeatable), e.g. 73000x100000; default: the two of the issue")
    p.add_argument("--ranks", default=",".join(map(str, RANKS)), help="comma-separated K")
    args = p.parse_args()
    problems = [tuple(int(v) for v in s.lower().split("x")) for s in args.problem] or PROBLEMS
    ks = [int(k) for k in args.ranks.split(",")]
    m = Machine(args)

    out = sys.stdout.write
    out("# Distributed RDM: scaling model for K H200s\n\n")
    out("Assumptions: FP32 %.1f TFLOP/s x %.2f, TF32 %.0f TFLOP/s x %.2f, HBM copy %.0f GB/s, %.0f GB per card (%.0f%% "
        "usable); file system %.1f GB/s read and %.1f GB/s write per GPU%s; NVLink %.0f GB/s, InfiniBand %.0f GB/s "
        "per GPU, %d GPUs per node; row exchange %.0f GB/s per rank (MPI through host memory), PCIe %.0f GB/s. Time = sum "
        "of a rank's phases (no overlap; `overlap` = max of the phases; `engine` = as the engine overlaps them), the "
        "slowest rank; E = T(1) / (K T(K)), T(1) the best one-GPU time (the plain rdm or one rank of a plan).\n\n"
        % (H200_FP32_TFLOPS, args.fp32_fraction, H200_TF32_TFLOPS, args.tf32_fraction, H200_HBM_COPY_GBPS,
           args.memory_gb, 100 * MEMORY_USABLE_FRACTION, args.fs_read_gbps, args.fs_write_gbps,
           (", %.0f GB/s in all" % args.fs_aggregate_gbps) if args.fs_aggregate_gbps else "", args.nvlink_gbps,
           args.ib_gbps, GPUS_PER_NODE, args.host_mpi_gbps, args.pcie_gbps))
    verdicts = []
    for S, N in problems:
        out("## S = {:,} x N = {:,}\n\n".format(S, N))
        out("Input %.1f GB, RDM %.1f GB, %.3g multiply-adds (S(S+1)N/2). Row-split tile T (the engine's rule) per K: "
            "%s.\n\n" % (gb(S * N * BYTES), gb(S * S * BYTES), S * (S + 1) / 2 * N,
                         ", ".join("K = %d: T = %d (%d x %d blocks)" % (K, engine_tile(S, N, K, m), -(-S // engine_tile(S, N, K, m)),
                                                                    -(-S // engine_tile(S, N, K, m))) for K in ks)))
        out("| K | plan | precision | time s | overlap s | engine s | E | E overlap | E engine | slowest rank: read / "
            "exch / compute / upload / reduce / write s | exchange wait s | tiles | row blocks | loaded GB | written GB | max memory GB | fits |\n")
        out("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        for precision in ("fp32", "tf32"):
            t1, o1, e1 = baseline(S, N, m, precision)
            for plan in PLANS:
                for K in ks:
                    ranks = run_plan(plan, S, N, K, m, precision)
                    tk, ok, slow, ek = summary(ranks)
                    ph = slow["phases"]
                    mem = max(r["memory"] for r in ranks)
                    out("| %d | %s | %s | %.2f | %.2f | %.2f | %.0f%% | %.0f%% | %.0f%% | %.2f / %.2f / %.2f / %.2f / %.2f / %.2f | %.2f | %d | %d | "
                        "%.1f | %.1f | %.1f | %s |\n"
                        % (K, plan, precision, tk, ok, ek, 100 * t1 / (K * tk), 100 * o1 / (K * ok), 100 * e1 / (K * ek),
                           ph["read"],
                           ph["exchange"], ph["compute"] + ph["zscore"], ph["upload"], ph["reduce"], ph["write"],
                           max(r.get("waited", 0.0) for r in ranks), slow["tiles"],
                           slow["blocks"], gb(slow["read_bytes"]), gb(slow["written"]), gb(mem),
                           "yes" if mem <= m.memory else "NO"))
        out("\n")
        if (S, N) == (73_000, 100_000) and TARGET_K in ks:
            verdicts.append((S, N))

    for S, N in verdicts:
        out("## Target: E >= %.0f%% at %d GPUs, S = {:,} x N = {:,}\n\n".format(S, N)
            % (100 * TARGET_EFFICIENCY, TARGET_K))
        for precision in ("fp32", "tf32"):
            for plan in PLANS:
                e_sum, e_max, e_eng = efficiency_at(plan, S, N, m, precision, TARGET_K)
                need = needed_read_bandwidth(plan, S, N, args, precision)
                ok = "met" if e_eng >= TARGET_EFFICIENCY else "NOT met"
                if ok == "met":
                    need_text = "at the stated bandwidths"
                elif need is None:
                    need_text = "not reachable by read bandwidth alone (another phase does not scale)"
                elif need <= 0.01:
                    need_text = "at any file-system read bandwidth (every rank reads 1/K of the file)"
                else:
                    need_text = "the target needs >= %.1f GB/s file-system read per GPU" % need
                out("- %s, %s: E = %.0f%% as the engine overlaps its phases (%.0f%% summed, %.0f%% all overlapped): "
                    "%s; %s.\n" % (plan, precision, 100 * e_eng, 100 * e_sum, 100 * e_max, ok, need_text))
        out("\n")


if __name__ == "__main__":
    main()
