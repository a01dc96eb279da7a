import time
rows=[]
def _busy():
    f=open('/proc/stat').readline().split()
    return (int(f[1])+int(f[2])+int(f[3])+int(f[6])+int(f[7]))/100
import pytest
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    b=_busy(); t=time.perf_counter()
    yield
    rows.append((_busy()-b, time.perf_counter()-t, item.nodeid))
def pytest_sessionfinish():
    with open('/tmp/cpu_per_test.txt','w') as f:
        for c,w,n in sorted(rows, reverse=True): f.write(f"{c:7.2f} {w:7.2f} {n}\n")
