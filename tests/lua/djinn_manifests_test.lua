-- The manifests of Djinn's own repositories (tests/manifests/djinn/, each
-- with its source in a leading "# source:" comment) load here exactly as
-- Djinn's Go loader reads them: the same verdict (refused or accepted),
-- and the same reading of the namespace, driver, env, objects, sources,
-- stages, allow_failures and jobs (stage, name, commands, artifacts).
--
-- The expectations below were derived from Djinn's code, not from ours:
-- manifest.Decode (gopkg.in/yaml.v2, non-strict) into manifest.Manifest,
-- Source.UnmarshalYAML, runner.Passthrough.UnmarshalYAML (SRC => DST, DST
-- defaulting to filepath.Base(SRC)), Manifest.Validate, the server's
-- namespace path check (build/http/form.go, namespace.ParsePath with the
-- segment rule of Path.Resolve, docs/djinn-compat.md §2.2), and the offline
-- runner's plan (jobs of unlisted stages dropped, "<stage>.<n>" names).
-- For qemu the driver gets arch = x86_64 (the server's UnmarshalText path).
--
-- Reading differences kept on purpose, each checked here:
--   * "SRC => " (empty DST, which Djinn's own API client sends for an
--     artifact with no name) is Djinn's DST "", ours a DST not written:
--     named = false, each match keeping its own name.
--   * Djinn keeps objects and artifacts in a map (order lost, a repeated
--     SRC replaces the earlier); we keep the list in manifest order.
--   * djinn = what Djinn says when it refuses; ours = the pattern of the
--     FILE:LINE:COL message we give instead.
local t = ...
local manifest = require "djinn.manifest"
-- Both loads, the one-pass and the full: they must agree on every case
-- (manifest_fast_test.lua).
manifest.loader = "both"
local fs = require "djinn.fs"

local dir = t.dir .. "/../manifests/djinn"

local expected = {
    ["client-build-submit-namespace.yml"] = {
        namespace = "submit/to/namespace",
        driver = { image = "golang", type = "docker", workspace = "/go" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = {  },
        allow_failures = {  },
        jobs = {
        },
    },
    ["client-build-submit.yml"] = {
        namespace = nil,
        driver = { image = "golang", type = "docker", workspace = "/go" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = {  },
        allow_failures = {  },
        jobs = {
        },
    },
    ["client-build-validation-0.yml"] = { refused = "invalid driver specified ", ours = "invalid driver specified" },
    ["client-build-validation-1.yml"] = { refused = "driver docker requies image", ours = "driver docker requires image" },
    ["client-build-validation-2.yml"] = { refused = "driver docker requires workspace", ours = "driver docker requires workspace" },
    ["client-build-validation-3.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "debian/stable", type = "qemu" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = {  },
        allow_failures = {  },
        jobs = {
        },
    },
    ["client-curator.yml"] = {
        namespace = nil,
        driver = { type = "os" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = { "collect-artifact" },
        allow_failures = {  },
        jobs = {
            { stage = "collect-artifact", name = "collect-artifact.1",
              commands = { "/bin/sh -c pwd", "/bin/sh -c \"head -c 1048576 /dev/urandom > /tmp/mb0.dat\"", "/bin/sh -c \"head -c 1048576 /dev/urandom > /tmp/mb1.dat\"", "/bin/sh -c \"head -c 1048576 /dev/urandom > /tmp/mb2.dat\"", "/bin/sh -c \"head -c 1048576 /dev/urandom > /tmp/mb3.dat\"", "/bin/sh -c \"head -c 1048576 /dev/urandom > /tmp/mb4.dat\"" },
              artifacts = { { "/tmp/mb0.dat", "" }, { "/tmp/mb1.dat", "" }, { "/tmp/mb2.dat", "" }, { "/tmp/mb3.dat", "" }, { "/tmp/mb4.dat", "" } } },
        },
    },
    ["client-namespace-owner.yml"] = {
        namespace = "aperture@doug.rattman",
        driver = { image = "golang", type = "docker", workspace = "/go" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = {  },
        allow_failures = {  },
        jobs = {
        },
    },
    ["client-variable-masking.yml"] = {
        namespace = "maskedvariables",
        driver = { type = "os" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = { "env1", "env2", "env3" },
        allow_failures = {  },
        jobs = {
            { stage = "env1", name = "env1.1",
              commands = { "printenv" },
              artifacts = {  } },
            { stage = "env2", name = "env2.1",
              commands = { "printenv" },
              artifacts = {  } },
            { stage = "env3", name = "env3.1",
              commands = { "printenv" },
              artifacts = {  } },
        },
    },
    ["client-worker-binary-output.yml"] = {
        namespace = nil,
        driver = { type = "os" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = { "/dev/urandom" },
        allow_failures = {  },
        jobs = {
            { stage = "/dev/urandom", name = "/dev/urandom.1",
              commands = { "printf \\n\\0\\0\\0\\0\\0\\0\\0\\0\\n", "head -c 1024 /dev/urandom", "printf \\n\\0\\0\\0\\0\\0\\0\\0\\0\\n" },
              artifacts = {  } },
        },
    },
    ["client-worker-collect-artifacts.yml"] = {
        namespace = nil,
        driver = { type = "os" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = { "collect" },
        allow_failures = {  },
        jobs = {
            { stage = "collect", name = "collect.1",
              commands = { "cat /etc/os-release" },
              artifacts = { { "/etc/os-release", "" }, { "/etc/hosts", "" }, { "/etc/shells", "" } } },
        },
    },
    ["client-worker-kill.yml"] = {
        namespace = nil,
        driver = { type = "os" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = { "sleep" },
        allow_failures = {  },
        jobs = {
            { stage = "sleep", name = "sleep.1",
              commands = { "sleep 5" },
              artifacts = {  } },
        },
    },
    ["client-worker-os.yml"] = {
        namespace = nil,
        driver = { type = "os" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = { "os-release" },
        allow_failures = {  },
        jobs = {
            { stage = "os-release", name = "os-release.1",
              commands = { "cat /etc/os-release" },
              artifacts = {  } },
        },
    },
    ["cron-cronspace.yml"] = {
        namespace = "cronspace",
        driver = { arch = "x86_64", image = "centos/7", type = "qemu" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = {  },
        allow_failures = {  },
        jobs = {
        },
    },
    ["cron-no-driver.yml"] = { refused = "invalid driver specified ", ours = "invalid driver specified" },
    ["djinn-yml-09a2265e.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "djinn-dev", type = "qemu" },
        env = { { "LDFLAGS", "-s -w" }, { "INTEGRATION_CONFIG", "testdata/server.cfg" } },
        objects = {  },
        sources = { { "https://github.com/djinn-ci/djinn", "", "djinn" } },
        stages = { "setup", "make" },
        allow_failures = {  },
        jobs = {
            { stage = "setup", name = "setup.1",
              commands = { "cd djinn", "mgrt run -type postgresql -dsn \"host=localhost port=5432 dbname=djinn user=djinn password=secret\"" },
              artifacts = {  } },
            { stage = "make", name = "make.1",
              commands = { "cd djinn", "./make.sh" },
              artifacts = { { "djinn/bin/djinn", "djinn" }, { "djinn/bin/djinn-curator", "djinn-curator" }, { "djinn/bin/djinn-scheduler", "djinn-scheduler" }, { "djinn/bin/djinn-server", "djinn-server" }, { "djinn/bin/djinn-worker", "djinn-worker" }, { "djinn/bin/sum.manif", "sum.manif" } } },
        },
    },
    ["djinn-yml-1b4cfc61.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "djinn-dev", type = "qemu" },
        env = { { "LDFLAGS", "-s -w" }, { "INTEGRATION_CONFIG", "testdata/server.conf" } },
        objects = {  },
        sources = { { "https://github.com/djinn-ci/djinn", "", "djinn" } },
        stages = { "setup", "make" },
        allow_failures = {  },
        jobs = {
            { stage = "setup", name = "setup.1",
              commands = { "cd djinn", "mgrt run -type postgresql -dsn \"host=localhost port=5432 dbname=djinn user=mgrt password=secret\"", "sudo -u postgres psql -c \"ALTER USER djinn_curator WITH PASSWORD 'secret'\"", "sudo -u postgres psql -c \"ALTER USER djinn_scheduler WITH PASSWORD 'secret'\"", "sudo -u postgres psql -c \"ALTER USER djinn_server WITH PASSWORD 'secret'\"", "sudo -u postgres psql -c \"ALTER USER djinn_worker WITH PASSWORD 'secret'\"" },
              artifacts = {  } },
            { stage = "make", name = "make.1",
              commands = { "cd djinn", "./make.sh" },
              artifacts = { { "djinn/bin/djinn", "djinn" }, { "djinn/bin/djinn-curator", "djinn-curator" }, { "djinn/bin/djinn-scheduler", "djinn-scheduler" }, { "djinn/bin/djinn-server", "djinn-server" }, { "djinn/bin/djinn-worker", "djinn-worker" }, { "djinn/bin/sum.manif", "sum.manif" } } },
        },
    },
    ["djinn-yml-574e57df.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "djinn-dev", type = "qemu" },
        env = { { "LDFLAGS", "-s -w" }, { "INTEGRATION_CONFIG", "testdata/server.cfg" } },
        objects = {  },
        sources = { { "https://github.com/djinn-ci/djinn", "", "djinn" } },
        stages = { "setup", "make" },
        allow_failures = {  },
        jobs = {
            { stage = "setup", name = "setup.1",
              commands = { "cd djinn", "mgrt run -type postgresql -dsn \"host=localhost port=5432 dbname=djinn user=djinn password=secret\"", "sudo -u postgres psql -c \"ALTER USER djinn_curator WITH PASSWORD 'secret'\"", "sudo -u postgres psql -c \"ALTER USER djinn_scheduler WITH PASSWORD 'secret'\"", "sudo -u postgres psql -c \"ALTER USER djinn_server WITH PASSWORD 'secret'\"", "sudo -u postgres psql -c \"ALTER USER djinn_worker WITH PASSWORD 'secret'\"" },
              artifacts = {  } },
            { stage = "make", name = "make.1",
              commands = { "cd djinn", "./make.sh" },
              artifacts = { { "djinn/bin/djinn", "djinn" }, { "djinn/bin/djinn-curator", "djinn-curator" }, { "djinn/bin/djinn-scheduler", "djinn-scheduler" }, { "djinn/bin/djinn-server", "djinn-server" }, { "djinn/bin/djinn-worker", "djinn-worker" }, { "djinn/bin/sum.manif", "sum.manif" } } },
        },
    },
    ["djinn-yml-5eb9b25e.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "djinn-dev", type = "qemu" },
        env = { { "LDFLAGS", "-s -w" }, { "INTEGRATION_CONFIG_DIR", "testdata" } },
        objects = {  },
        sources = { { "https://github.com/djinn-ci/djinn", "dev", "djinn" } },
        stages = { "setup", "make" },
        allow_failures = {  },
        jobs = {
            { stage = "setup", name = "setup.1",
              commands = { "printf \"127.0.0.1\\tlocal.dev\\n\" | tee -a /etc/hosts", "cd djinn", "mgrt run -c schema -type postgresql -dsn \"host=localhost port=5432 dbname=djinn user=mgrt password=secret\"", "mgrt run -c perms -type postgresql -dsn \"host=localhost port=5432 dbname=djinn user=mgrt password=secret\"", "sudo -u postgres psql -c \"ALTER TYPE driver_type ADD VALUE 'os'\" -d djinn", "sudo -u postgres psql -c \"ALTER USER djinn_consumer WITH PASSWORD 'secret'\"", "sudo -u postgres psql -c \"ALTER USER djinn_curator WITH PASSWORD 'secret'\"", "sudo -u postgres psql -c \"ALTER USER djinn_scheduler WITH PASSWORD 'secret'\"", "sudo -u postgres psql -c \"ALTER USER djinn_server WITH PASSWORD 'secret'\"", "sudo -u postgres psql -c \"ALTER USER djinn_worker WITH PASSWORD 'secret'\"" },
              artifacts = {  } },
            { stage = "make", name = "make.1",
              commands = { "cd djinn", "./make.sh" },
              artifacts = { { "djinn/integration/testdata/log/server.log", "server.log" }, { "djinn/integration/testdata/log/webhook.log", "webhook.log" }, { "djinn/integration/testdata/log/worker.log", "worker.log" }, { "djinn/bin/djinn", "djinn" }, { "djinn/bin/djinn-consumer", "djinn-consumer" }, { "djinn/bin/djinn-curator", "djinn-curator" }, { "djinn/bin/djinn-scheduler", "djinn-scheduler" }, { "djinn/bin/djinn-server", "djinn-server" }, { "djinn/bin/djinn-worker", "djinn-worker" }, { "djinn/bin/sum.manif", "sum.manif" } } },
        },
    },
    ["djinn-yml-9b4e2b37.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "djinn-dev", type = "qemu" },
        env = { { "PGPASSWORD", "secret" }, { "LDFLAGS", "-s -w" }, { "INTEGRATION_CONFIG", "testdata/server.cfg" } },
        objects = {  },
        sources = { { "https://github.com/djinn-ci/djinn", "", "djinn" } },
        stages = { "setup", "make" },
        allow_failures = {  },
        jobs = {
            { stage = "setup", name = "setup.1",
              commands = { "psql -U djinn -h localhost -d djinn -f djinn/schema.sql" },
              artifacts = {  } },
            { stage = "make", name = "make.1",
              commands = { "cd djinn", "./make.sh" },
              artifacts = { { "djinn/bin/djinn", "djinn" }, { "djinn/bin/djinn-curator", "djinn-curator" }, { "djinn/bin/djinn-scheduler", "djinn-scheduler" }, { "djinn/bin/djinn-server", "djinn-server" }, { "djinn/bin/djinn-worker", "djinn-worker" }, { "djinn/bin/sum.manif", "sum.manif" } } },
        },
    },
    ["djinn-yml-e70aa22a.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "djinn-dev", type = "qemu" },
        env = { { "PGPASSWORD", "secret" }, { "LDFLAGS", "-s -w" } },
        objects = {  },
        sources = { { "https://github.com/djinn-ci/djinn", "", "djinn" } },
        stages = { "setup", "integration", "make" },
        allow_failures = {  },
        jobs = {
            { stage = "setup", name = "setup.1",
              commands = { "psql -U djinn -h localhost -d djinn -f djinn/schema.sql" },
              artifacts = {  } },
            { stage = "integration", name = "integration.1",
              commands = { "cd djinn", "go test -v -tags \"integration\" ./integration" },
              artifacts = {  } },
            { stage = "make", name = "make.1",
              commands = { "cd djinn", "./make.sh" },
              artifacts = { { "djinn/bin/djinn", "djinn" }, { "djinn/bin/djinn-curator", "djinn-curator" }, { "djinn/bin/djinn-scheduler", "djinn-scheduler" }, { "djinn/bin/djinn-server", "djinn-server" }, { "djinn/bin/djinn-worker", "djinn-worker" }, { "djinn/bin/sum.manif", "sum.manif" } } },
        },
    },
    ["djinn-yml-f3428418.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "djinn-dev", type = "qemu" },
        env = { { "LDFLAGS", "-s -w" } },
        objects = {  },
        sources = { { "https://github.com/andrewpillar/djinn.git", "", "djinn" } },
        stages = { "test", "make" },
        allow_failures = {  },
        jobs = {
            { stage = "test", name = "test.1",
              commands = { "cd djinn", "go test -cover ./...", "go test -v -tags \"integration\" ./integration" },
              artifacts = {  } },
            { stage = "make", name = "make.1",
              commands = { "cd djinn", "./make.sh runner", "./make.sh scheduler", "./make.sh server", "./make.sh worker", "./make.sh manif" },
              artifacts = { { "bin/djinn", "djinn" }, { "bin/djinn-scheduler", "djinn-scheduler" }, { "bin/djinn-server", "djinn-server" }, { "bin/djinn-worker", "djinn-worker" }, { "sum.manif", "sum.manif" } } },
        },
    },
    ["docs-djinn-basics-namespace.yml"] = {
        namespace = "mdsrv",
        driver = { arch = "x86_64", image = "centos/7", type = "qemu" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = {  },
        allow_failures = {  },
        jobs = {
        },
    },
    ["docs-djinn-basics-submit.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "centos/7", type = "qemu" },
        env = {  },
        objects = {  },
        sources = { { "https://github.com/andrewpillar/mdsrv.git", "", "mdsrv" } },
        stages = { "build" },
        allow_failures = {  },
        jobs = {
            { stage = "build", name = "build.1",
              commands = { "cd mdsrv", "./make.sh" },
              artifacts = { { "mdsrv.out", "mdsrv", true } } },
        },
    },
    ["docs-djinn-manifest-md.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "centos/7", type = "qemu" },
        env = { { "PGADDR", "host=localhost port=5432 dbname=djinn user=djinn password=secret sslmode=disable" }, { "RDADDR", "localhost:6379" }, { "LDFLAGS", "-s -w" } },
        objects = { { "server.crt", "server.crt" }, { "server.key", "server.key" } },
        sources = { { "https://github.com/djinn-ci/djinn.git", "", "djinn" } },
        stages = { "test", "make" },
        allow_failures = {  },
        jobs = {
            { stage = "test", name = "test.1",
              commands = { "cd djinn", "go test -cover ./...", "go test -tags \"integration\" ./integration" },
              artifacts = {  } },
            { stage = "make", name = "make.1",
              commands = { "cd djinn", "./make.sh runner", "./make.sh server", "./make.sh worker" },
              artifacts = { { "integration/server.log", "server.log" }, { "djinn.out", "djinn.out" }, { "djinn-server.out", "djinn-server.out" }, { "djinn-worker.out", "djinn-worker.out" } } },
        },
    },
    ["docs-djinn-tutorial-mdsrv.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "debian/stable", type = "qemu" },
        env = {  },
        objects = {  },
        sources = { { "https://github.com/andrewpillar/mdsrv", "", "mdsrv" } },
        stages = { "packages", "make" },
        allow_failures = {  },
        jobs = {
            { stage = "packages", name = "packages.1",
              commands = { "apt install -y golang" },
              artifacts = {  } },
            { stage = "make", name = "make.1",
              commands = { "cd mdsrv", "./make.sh" },
              artifacts = { { "mdsrv/bin/mdsrv", "mdsrv" } } },
        },
    },
    ["docs-manifest-example.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "djinn-dev", type = "qemu" },
        env = { { "PGPASSWORD", "secret" }, { "LDFLAGS", "-s -w" } },
        objects = {  },
        sources = { { "https://djinn-ci.com.git", "", "djinn" } },
        stages = { "setup", "integration", "make" },
        allow_failures = {  },
        jobs = {
            { stage = "setup", name = "setup.1",
              commands = { "psql -U djinn -h localhost -d djinn -f djinn/schema.sql" },
              artifacts = {  } },
            { stage = "integration", name = "integration.1",
              commands = { "cd djinn", "go test -v -tags \"integration\" ./integration" },
              artifacts = {  } },
            { stage = "make", name = "make.1",
              commands = { "cd djinn", "./make.sh" },
              artifacts = { { "djinn/bin/djinn", "djinn" }, { "djinn/bin/djinn-curator", "djinn-curator" }, { "djinn/bin/djinn-scheduler", "djinn-scheduler" }, { "djinn/bin/djinn-server", "djinn-server" }, { "djinn/bin/djinn-worker", "djinn-worker" }, { "djinn/bin/sum.manif", "sum.manif" } } },
        },
    },
    ["docs-repo-djinn-yml-108eeca9.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "debian/stable", type = "qemu" },
        env = { { "DJINN_API_SERVER", "https://api.djinn-ci.com" }, { "DJINN_SERVER", "https://djinn-ci.com" } },
        objects = {  },
        sources = { { "https://github.com/mkdocs/mkdocs", "", "mkdocs" }, { "https://github.com/dldevinc/jinja2-simple-tags", "", "jinja2-simple-tags" }, { "https://github.com/djinn-ci/docs", "", "docs" } },
        stages = { "deps", "build" },
        allow_failures = {  },
        jobs = {
            { stage = "deps", name = "deps.1",
              commands = { "apt install -y python3 python3-pip yarnpkg", "pip3 install jinja2 mkdocs-minify-plugin", "cd jinja2-simple-tags", "python3 setup.py install", "cd -", "cd mkdocs", "python3 setup.py install" },
              artifacts = {  } },
            { stage = "build", name = "build.1",
              commands = { "cd docs", "yarnpkg install", "./node_modules/.bin/lessc --clean-css less/main.less theme/css/main.css", "cd plugins", "python3 -m pip install", "cd -", "mkdocs build", "tar -czf site.tar.gz site" },
              artifacts = { { "docs/site.tar.gz", "site.tar.gz" } } },
        },
    },
    ["docs-repo-djinn-yml-a4a43b16.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "debian/stable", type = "qemu" },
        env = { { "DJINN_API_SERVER", "https://api.djinn-ci.com" }, { "DJINN_SERVER", "https://djinn-ci.com" } },
        objects = {  },
        sources = { { "https://github.com/mkdocs/mkdocs", "", "mkdocs" }, { "https://github.com/dldevinc/jinja2-simple-tags", "", "jinja2-simple-tags" }, { "https://github.com/djinn-ci/docs", "", "docs" } },
        stages = { "deps", "build" },
        allow_failures = {  },
        jobs = {
            { stage = "deps", name = "deps.1",
              commands = { "apt install -y python3 python3-pip yarnpkg", "pip3 install jinja2 mkdocs-minify-plugin", "cd jinja2-simple-tags", "python3 setup.py install", "cd -", "cd mkdocs", "python3 -m pip install ." },
              artifacts = {  } },
            { stage = "build", name = "build.1",
              commands = { "cd docs", "yarnpkg install", "./node_modules/.bin/lessc --clean-css less/main.less theme/css/main.css", "cd plugins", "python3 setup.py install", "cd -", "mkdocs build", "mv site docs.djinn-ci.com", "tar -czf docs.djinn-ci.com.tar.gz docs.djinn-ci.com" },
              artifacts = { { "docs/docs.djinn-ci.com.tar.gz", "docs.djinn-ci.com.tar.gz" } } },
        },
    },
    ["docs-tutorial-building-code.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "debian/stable", type = "qemu" },
        env = { { "GOVERSION", "1.18" } },
        objects = {  },
        sources = { { "https://github.com/djinn-ci/imgsrv.git", "", "imgsrv" }, { "https://github.com/golang/tools", "", "tools" }, { "https://github.com/valyala/quicktemplate", "", "quicktemplate" } },
        stages = { "deps", "make" },
        allow_failures = {  },
        jobs = {
            { stage = "deps", name = "deps.1",
              commands = { "wget -q https://go.dev/dl/go${GOVERSION}.linux-amd64.tar.gz", "tar -xzf go${GOVERSION}.linux-amd64.tar.gz", "mv go /usr/local", "ln -sf /usr/local/go/bin/go /usr/local/bin/go", "ln -sf /usr/local/go/bin/gofmt /usr/local/bin/gofmt", "cd ~/tools/cmd/stringer", "go build", "mv stringer /usr/local/bin", "cd ~/quicktemplate/qtc", "go build", "mv qtc /usr/local/bin" },
              artifacts = {  } },
            { stage = "make", name = "make.1",
              commands = { "cd ~/imgsrv", "./make.sh" },
              artifacts = { { "imgsrv/bin/djinn-imgsrv", "djinn-imgsrv" } } },
        },
    },
    ["docs-tutorial-first-build.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "debian/stable", type = "qemu" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = { "os" },
        allow_failures = {  },
        jobs = {
            { stage = "os", name = "os.1",
              commands = { "cat /etc/os-release" },
              artifacts = { { "/etc/os-release", "os-release" } } },
        },
    },
    ["flow-namespace-black-mesa.yml"] = { refused = "namespace: name can only contain letters and numbers", ours = "namespace: segment 1 'black%-mesa' of 'black%-mesa': a segment may contain only" },
    ["flow-namespace-blackmesa.yml"] = {
        namespace = "blackmesa",
        driver = { arch = "x86_64", image = "centos/7", type = "qemu" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = {  },
        allow_failures = {  },
        jobs = {
        },
    },
    ["flow-namespace-city17-you.yml"] = {
        namespace = "city17@you",
        driver = { arch = "x86_64", image = "centos/7", type = "qemu" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = {  },
        allow_failures = {  },
        jobs = {
        },
    },
    ["testdata-anonymous-04d0e289.yml"] = { refused = "driver docker requires workspace", ours = "driver docker requires workspace" },
    ["testdata-anonymous-1df6603d.yml"] = {
        namespace = nil,
        driver = { image = "golang", type = "docker", workspace = "/go" },
        env = { { "GOPATH", "/go" } },
        objects = {  },
        sources = {  },
        stages = { "env" },
        allow_failures = {  },
        jobs = {
            { stage = "env", name = "env.1",
              commands = { "go env" },
              artifacts = {  } },
        },
    },
    ["testdata-build-04d0e289.yml"] = {
        namespace = "djinn",
        driver = { arch = "x86_64", image = "centos/7", type = "qemu" },
        env = { { "LOCALE", "en_GB.UTF-8" } },
        objects = { { "data", "data" } },
        sources = {  },
        stages = { "clean" },
        allow_failures = {  },
        jobs = {
            { stage = "clean", name = "clean.1",
              commands = { "tr -d '0-9' data > data.cleaned" },
              artifacts = { { "data.cleaned", "data.cleaned" } } },
        },
    },
    ["thrall-yml-02770f61.yml"] = { refused = "yaml: sources: cannot unmarshal into string", ours = "sources%[1%]: expected a string, got a mapping" },
    ["thrall-yml-8547de42.yml"] = {
        namespace = "thrall/webhook",
        driver = { arch = "x86_64", image = "centos/7", type = "qemu" },
        env = {  },
        objects = {  },
        sources = {  },
        stages = { "os" },
        allow_failures = {  },
        jobs = {
            { stage = "os", name = "os.1",
              commands = { "cat /etc/os-release" },
              artifacts = {  } },
        },
    },
    ["tools-alpine-3.14.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "alpine/3.14", type = "qemu" },
        env = {  },
        objects = { { "bootstrap-alpine.sh", "bootstrap-alpine.sh" }, { "util.sh", "util.sh" } },
        sources = {  },
        stages = { "bootstrap" },
        allow_failures = {  },
        jobs = {
            { stage = "bootstrap", name = "bootstrap.1",
              commands = { "./bootstrap-alpine.sh" },
              artifacts = { { "alpine", "alpine/3.14", true } } },
        },
    },
    ["tools-alpine-3.15.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "alpine/3.15", type = "qemu" },
        env = {  },
        objects = { { "bootstrap-alpine.sh", "bootstrap-alpine.sh" }, { "util.sh", "util.sh" } },
        sources = {  },
        stages = { "bootstrap" },
        allow_failures = {  },
        jobs = {
            { stage = "bootstrap", name = "bootstrap.1",
              commands = { "./bootstrap-alpine.sh" },
              artifacts = { { "alpine", "alpine/3.15", true } } },
        },
    },
    ["tools-alpine-edge.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "alpine/edge", type = "qemu" },
        env = {  },
        objects = { { "bootstrap-alpine.sh", "bootstrap-alpine.sh" }, { "util.sh", "util.sh" } },
        sources = {  },
        stages = { "bootstrap" },
        allow_failures = {  },
        jobs = {
            { stage = "bootstrap", name = "bootstrap.1",
              commands = { "./bootstrap-alpine.sh" },
              artifacts = { { "alpine", "alpine/edge", true } } },
        },
    },
    ["tools-arch.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "arch", type = "qemu" },
        env = { { "COUNTRY", "GB" } },
        objects = { { "bootstrap-arch.sh", "bootstrap-arch.sh" }, { "util.sh", "util.sh" } },
        sources = {  },
        stages = { "bootstrap" },
        allow_failures = {  },
        jobs = {
            { stage = "bootstrap", name = "bootstrap.1",
              commands = { "./bootstrap-arch.sh" },
              artifacts = { { "arch", "arch" } } },
        },
    },
    ["tools-debian-10.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "debian/bookworm", type = "qemu" },
        env = { { "CODENAME", "oldstable" }, { "DEBIAN_FRONTEND", "noninteractive" } },
        objects = { { "bootstrap-debian.sh", "bootstrap-debian.sh" }, { "util.sh", "util.sh" } },
        sources = {  },
        stages = { "bootstrap" },
        allow_failures = {  },
        jobs = {
            { stage = "bootstrap", name = "bootstrap.1",
              commands = { "./bootstrap-debian.sh" },
              artifacts = { { "debian", "debian/10", true } } },
        },
    },
    ["tools-debian-11.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "debian/bookworm", type = "qemu" },
        env = { { "CODENAME", "stable" }, { "DEBIAN_FRONTEND", "noninteractive" } },
        objects = { { "bootstrap-debian.sh", "bootstrap-debian.sh" }, { "util.sh", "util.sh" } },
        sources = {  },
        stages = { "bootstrap" },
        allow_failures = {  },
        jobs = {
            { stage = "bootstrap", name = "bootstrap.1",
              commands = { "./bootstrap-debian.sh" },
              artifacts = { { "debian", "debian/11", true } } },
        },
    },
    ["tools-debian-bookworm-d5e24097.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "debian/bookworm", type = "qemu" },
        env = { { "CODENAME", "bookworm" } },
        objects = { { "bootstrap-debian.sh", "bootstrap-debian.sh" }, { "util.sh", "util.sh" } },
        sources = {  },
        stages = { "bootstrap" },
        allow_failures = {  },
        jobs = {
            { stage = "bootstrap", name = "bootstrap.1",
              commands = { "./bootstrap-debian.sh" },
              artifacts = { { "debian", "debian/bookworm", true } } },
        },
    },
    ["tools-debian-bookworm.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "debian/bookworm", type = "qemu" },
        env = { { "CODENAME", "bookworm" }, { "DEBIAN_FRONTEND", "noninteractive" } },
        objects = { { "bootstrap-debian.sh", "bootstrap-debian.sh" }, { "util.sh", "util.sh" } },
        sources = {  },
        stages = { "bootstrap" },
        allow_failures = {  },
        jobs = {
            { stage = "bootstrap", name = "bootstrap.1",
              commands = { "./bootstrap-debian.sh" },
              artifacts = { { "debian", "debian/bookworm", true } } },
        },
    },
    ["tools-freebsd-12.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "freebsd/12", type = "qemu" },
        env = { { "RELEASE", "12.3-RELEASE" } },
        objects = { { "bootstrap-freebsd.sh", "bootstrap-freebsd.sh" } },
        sources = {  },
        stages = { "bootstrap" },
        allow_failures = {  },
        jobs = {
            { stage = "bootstrap", name = "bootstrap.1",
              commands = { "./bootstrap-freebsd.sh" },
              artifacts = { { "freebsd", "freebsd/12", true } } },
        },
    },
    ["tools-freebsd-13.yml"] = {
        namespace = nil,
        driver = { arch = "x86_64", image = "freebsd/13", type = "qemu" },
        env = { { "RELEASE", "13.1-RELEASE" } },
        objects = { { "bootstrap-freebsd.sh", "bootstrap-freebsd.sh" } },
        sources = {  },
        stages = { "bootstrap" },
        allow_failures = {  },
        jobs = {
            { stage = "bootstrap", name = "bootstrap.1",
              commands = { "./bootstrap-freebsd.sh" },
              artifacts = { { "freebsd", "freebsd/13", true } } },
        },
    },
}

-- Every collected manifest has an expectation, and every expectation a
-- manifest.
local files = {}
for _, p in ipairs(assert(fs.glob(dir .. "/*.yml"))) do
    files[#files + 1] = p:match("([^/]+)$")
end
local nexp = 0
for name in pairs(expected) do
    nexp = nexp + 1
    t:ok(fs.exists(dir .. "/" .. name), "manifest file exists: " .. name)
end
t:is(#files, nexp, "one expectation per collected manifest")

local by_source, refused = {}, 0
for _, name in ipairs(files) do
    local want = expected[name]
    local path = dir .. "/" .. name
    local text = assert(fs.readfile(path))
    local repo = text:match("^# source: (%S+)")
    t:ok(repo ~= nil, name .. ": starts with its source")
    by_source[repo or "?"] = (by_source[repo or "?"] or 0) + 1
    local m, msgs = manifest.load(path)
    if want == nil then
        t:ok(false, name .. ": has an expectation")
    elseif want.refused then
        refused = refused + 1
        t:ok(m == nil, name .. ": refused, as Djinn does (" .. want.refused ..
             ")")
        local all = table.concat(m == nil and msgs or {}, "\n")
        t:like(all, want.ours, name .. ": says why")
        for _, msg in ipairs(m == nil and msgs or {}) do
            t:like(msg, "^[^:]+:%d+:%d+: ", name .. ": FILE:LINE:COL")
        end
    else
        t:ok(m ~= nil, name .. ": accepted, as Djinn does" ..
             (m == nil and (": " .. table.concat(msgs, "; ")) or ""))
        m = m or { driver = {}, env = {}, objects = {}, sources = {},
                   stages = {}, allow_failures = {}, jobs = {} }
        t:is(m == nil and {} or msgs, {}, name .. ": no warnings")
        t:is(m.namespace, want.namespace, name .. ": namespace")
        t:is(m.driver, want.driver, name .. ": driver")
        local env = {}
        for i, kv in ipairs(m.env) do env[i] = { kv.key, kv.value } end
        t:is(env, want.env, name .. ": env")
        -- { src, dst, named }: Djinn's DST, and whether the manifest wrote
        -- one. Djinn's DST "" (nothing after "=>") is a DST not written
        -- here, whose dst is basename(SRC).
        local function pts(list)
            local out = {}
            for i, p in ipairs(list) do
                out[i] = { p.src, p.dst, p.named or nil }
            end
            return out
        end
        local function want_pts(list)
            local out = {}
            for i, w in ipairs(list) do
                local dst = w[2]
                if dst == "" then
                    dst = w[1]:gsub("/+$", ""):match("([^/]*)$")
                end
                out[i] = { w[1], dst, w[3] }
            end
            return out
        end
        t:is(pts(m.objects), want_pts(want.objects), name .. ": objects")
        local src = {}
        for i, s in ipairs(m.sources) do src[i] = { s.url, s.ref, s.dir } end
        t:is(src, want.sources, name .. ": sources")
        t:is(m.stages, want.stages, name .. ": stages")
        t:is(m.allow_failures, want.allow_failures, name .. ": allow_failures")
        t:is(#m.jobs, #want.jobs, name .. ": number of jobs")
        for i, wj in ipairs(want.jobs) do
            local j = m.jobs[i] or { commands = {}, artifacts = {} }
            local tag = string.format("%s: jobs[%d] ", name, i)
            t:is({ j.stage, j.name }, { wj.stage, wj.name },
                 tag .. "stage and name")
            t:is(j.commands, wj.commands, tag .. "commands")
            t:is(pts(j.artifacts), want_pts(wj.artifacts),
                 tag .. "artifacts")
        end
    end
end
local keys = {}
for k, n in pairs(by_source) do keys[#keys + 1] = k .. " " .. n end
table.sort(keys)
t:diag(#files .. " manifests (" .. table.concat(keys, ", ") .. "), " ..
       refused .. " refused")
