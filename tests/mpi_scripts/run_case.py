"""Run one case of cases.py under MPI: ``mpiexec -n K python run_case.py CASE WORKDIR``.

Every rank runs the case with a fastnn.distributed.DataParallel; rank 0 gathers every
rank's result and writes them, as a pickled list indexed by rank, to WORKDIR/result.pkl
(test data written and read by the test itself).
"""
import os
import pickle
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cases  # noqa: E402
from fastnn.distributed import DataParallel  # noqa: E402

name, workdir = sys.argv[1], sys.argv[2]
strategy = DataParallel()
result = cases.CASES[name](strategy, strategy.rank, workdir)
result["size"] = strategy.size
result["allreduce_calls"] = strategy.allreduce_calls
results = strategy.comm.gather(result, root=0)
if strategy.is_chief:
    with open(os.path.join(workdir, "result.pkl"), "wb") as f:
        pickle.dump(results, f)
