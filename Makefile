# lockproxy: `make run` starts it on the embedded store; `make test` runs
# every test, installing redis-server first when it is missing.

GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: run test deps check bench fuzz

run:
	$(GO) run ./cmd/lockproxy

test: deps
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# The tests start their own redis-server processes; they never use one
# already running. helm is built here, once, rather than in the middle of
# the test run, where a first build takes two minutes of both CPUs.
HELM := helm.sh/helm/v3/cmd/helm@v3.22.0

deps:
	$(GO) run $(HELM) version >/dev/null
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "redis-server not found: installing it with apt-get"; \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server; \
	}
	@# internal/redistest.FakeTime runs redis-server with its clock shifted.
	@set -- /usr/lib/*/faketime/libfaketime.so.1; [ -e "$$1" ] || { \
		echo "libfaketime not found: installing it with apt-get"; \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libfaketime; \
	}
	@# The client compatibility suite (compat/): Debian's redis-py for the
	@# system python3 (not pip's), Node.js and the npm packages of compat/node.
	@/usr/bin/python3 -c 'import redis' >/dev/null 2>&1 || { \
		echo "python3-redis not found: installing it with apt-get"; \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-redis; \
	}
	@# The Python client's tests (clients/python): Debian's pytest for the system python3.
	@/usr/bin/python3 -c 'import pytest' >/dev/null 2>&1 || { \
		echo "python3-pytest not found: installing it with apt-get"; \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-pytest; \
	}
	@{ command -v node && command -v npm; } >/dev/null 2>&1 || { \
		echo "node or npm not found: installing nodejs and npm with apt-get"; \
		SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm; \
	}
	@[ compat/node/node_modules/.package-lock.json -nt compat/node/package-lock.json ] || { \
		echo "compat/node/node_modules missing or older than its package-lock.json: npm ci"; \
		npm ci --prefix compat/node --no-audit --no-fund --loglevel=error; \
	}
	@# The Node.js package (clients/node): its npm packages; npm ci also builds it.
	@[ clients/node/node_modules/.package-lock.json -nt clients/node/package-lock.json ] || { \
		echo "clients/node/node_modules missing or older than its package-lock.json: npm ci"; \
		npm ci --prefix clients/node --no-audit --no-fund --loglevel=error; \
	}

check:
	test -z "$$(gofmt -l .)"
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: deps
	$(GO) test -run='^$$' -bench=. -benchtime=3s ./cmd/lockproxy/
	$(GO) test -run='^$$' -bench=BatchScripts -benchtime=2000x ./lockcore/redisstore/
	$(GO) build -o ./lockproxy ./cmd/lockproxy
	$(GO) run ./cmd/lockbench -lockproxy ./lockproxy -mode uncontended -clients 32 -duration 1s -rounds 3 -floor
	$(GO) run ./cmd/lockbench -lockproxy ./lockproxy -mode locks -clients 100 -locks 10000 -ttl 6s -duration 10s

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzReader -fuzztime=60s ./resp/
