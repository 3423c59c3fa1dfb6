"""Datasets: where they are found, how they are read, and how batches are cut from them. Imports only core/.

download.py (checked downloads, DataError; imports nothing of the package) - locate.py (where data is found,
the official files) - imageset.py (ImageSet: one split whole as tensors) - cifar.py, idx.py (MNIST,
Fashion-MNIST), folder.py (your own image folders and archives, the decoded-image cache), builtin.py
(digits, fake) - images.py (the registry: load_images) - batches.py (augmentation and epochs of batches on
the device) - stream.py (image folders too big for memory, decoded in DataLoader workers). Text corpora are
read by recurrent/text.py, found the same way.
"""
