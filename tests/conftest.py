import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # The suite's tensors are tiny: a second intra-op thread only adds synchronisation, and on a
    # shared 2-core host a spinning OpenMP thread can slow a step down a hundredfold.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
