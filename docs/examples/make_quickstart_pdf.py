"""Writes docs/examples/quickstart.pdf, the PDF the README's curl example uploads.

Run: python docs/examples/make_quickstart_pdf.py (no dependencies: a minimal PDF by hand).
"""

from __future__ import annotations

from pathlib import Path

PAGES = [
    [
        "ragserve HTTP API - quick start",
        "",
        "Every request carries an API key in the Authorization header as a",
        "bearer token, or in the X-API-Key header. Keys start with rsk_ and are",
        "created with: ragserve keys create --tenant NAME --scopes read,write,admin.",
        "A key is shown once and stored only as a SHA-256 hash.",
        "",
        "Scopes: read lets a key search and ask questions; write also lets it",
        "upload and delete documents; admin also manages keys and the tenant's LLM.",
        "Each key belongs to one tenant, and a tenant never sees another's data.",
    ],
    [
        "Limits and quotas",
        "",
        "Each API key may send 600 requests per minute by default. Each tenant may",
        "ask 10000 questions and use 2 million LLM tokens per day. A request over",
        "a limit gets status 429 with a Retry-After header in seconds.",
        "Uploads larger than 50 MiB are refused with status 413 while they stream.",
        "",
        "Streaming: send stream true to POST /v1/query to receive the answer as",
        "Server-Sent Events: token events, then sources, then a done event.",
    ],
]


def pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one page per list, one Helvetica line per string."""
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for lines in pages:
        shown = " ".join(f"({line}) '" for line in lines)
        content = f"BT /F1 11 Tf 50 790 Td 16 TL {shown} ET"
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {len(objects)} 0 R"
            " /Resources << /Font << /F1 3 0 R >> >> >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


if __name__ == "__main__":
    target = Path(__file__).with_name("quickstart.pdf")
    target.write_bytes(pdf(PAGES))
    print(f"wrote {target}")
