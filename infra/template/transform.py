"""The SAM transform, offline: what CloudFormation will see after `sam deploy`.

    transform.py TEMPLATE OUTPUT [Name=Value ...]

Runs aws-sam-translator (the version the pinned SAM CLI depends on) over TEMPLATE with the given
parameter values and writes the CloudFormation template as JSON to OUTPUT. Every function's
CodeUri becomes a dummy S3 location, as `sam package` would make it; no AWS call is made (the
managed-policy map is empty: the template names no managed policy by name).
"""

import json
import logging
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


# The transform asks a feature-toggle configuration for a flag that only applies to APIs with an
# OpenAPI DefinitionBody (this template has none); without a configuration it warns on every call.
logging.getLogger("samtranslator.feature_toggle.feature_toggle").setLevel(logging.ERROR)


class NoManagedPolicies:
    """The transform asks for AWS's managed-policy names only for policies named that way."""

    def load(self):
        return {}


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    source, output, overrides = argv[1], argv[2], argv[3:]
    with open(source, encoding="utf-8") as handle:
        template = yaml_parse(handle.read())
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = f"s3://latchkey-offline-check/{name}.zip"
    parameters = {}
    for pair in overrides:
        name, _, value = pair.partition("=")
        if name not in template.get("Parameters", {}):
            sys.exit(f"transform.py: no parameter {name} in {source}")
        parameters[name] = value
    # The defaults, as CloudFormation would fill them in, for what the transform resolves itself.
    for name, spec in template.get("Parameters", {}).items():
        if name not in parameters and "Default" in spec:
            parameters[name] = spec["Default"]
    parameters.setdefault("AWS::Region", os.environ["AWS_DEFAULT_REGION"])
    transformed = transform(template, parameters, NoManagedPolicies())
    with open(output, "w", encoding="utf-8") as handle:
        json.dump(transformed, handle, indent=1, sort_keys=True)
        handle.write("\n")


if __name__ == "__main__":
    main(sys.argv)
