"""From files to batches: dataset splits, the decoded-image cache, the masked-image Dataset and
loaders, mixtures of datasets, mask families and sampling, colour hints, duplicate detection."""
