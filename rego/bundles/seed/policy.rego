package stellaops.attestation

import data.lib.stellaops

deny[msg] {
    input.kind == "Pod"
    container := input.spec.containers[_]
    image := container.image

    # Require scan attestation
    not has_valid_attestation(image, "stellaops.io/predicates/scan-result@v1")

    msg := sprintf("Image %v missing valid scan attestation", [image])
}

has_valid_attestation(image, predicate_type) {
    attestation := stellaops.get_attestation(image, predicate_type)
    stellaops.verify_attestation(attestation)
}
