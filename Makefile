# DFS developer entry points. See README.md.
BUILD_DIR ?= build
ASAN_BUILD_DIR ?= build-asan
BUILD_TYPE ?= RelWithDebInfo
MOUNT ?= $(CURDIR)/mnt
CMAKE_FLAGS ?=
CTEST_ARGS ?=

.PHONY: all deps build run test test-unit test-e2e test-asan clean format

all: build

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/build.ninja
	ninja -C $(BUILD_DIR)

# Starts one dfs-meta and six dfs-storage on 127.0.0.1 (data in ./.dfs-local) and mounts at $(MOUNT).
run: build
	@scripts/run-local.sh "$(BUILD_DIR)/bin" "$(CURDIR)/.dfs-local" "$(MOUNT)"

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure $(CTEST_ARGS)

test-unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L unit -j2

test-e2e: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L e2e

# Same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDFS_SANITIZE=ON \
	  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
	ninja -C $(ASAN_BUILD_DIR)
	ASAN_OPTIONS=detect_leaks=0 ctest --test-dir $(ASAN_BUILD_DIR) --output-on-failure $(CTEST_ARGS)

format:
	find backend fuse tools tests -name '*.cc' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR)

# Packages (see packaging/README.md): .deb files into build-deb/, .rpm files into build-rpm/.
.PHONY: deb rpm
deb:
	packaging/deb/build-deb.sh "$(CURDIR)/build-deb"
RPM_DIR ?= $(CURDIR)/build-rpm
rpm:
	packaging/rpm/build-rpm.sh "$(RPM_DIR)"
