// Real-input packing for the FFT: a real signal of M = 2n samples is read as n complex
// values z[i] = x[2i] + I*x[2i+1] and transformed by one n-point complex FFT; these
// kernels convert between that transform and the M/2 + 1 = n + 1 bins of the real one.
// tw has M entries: tw[k] = exp(-2*pi*k*I / M).

struct Real {
    n: u32,        // complex FFT size (M / 2)
    stride: u32,   // elements between spectra in the bins buffer (>= n + 1)
    total: u32,    // threads: batch * (n + 1) for unpack, batch * n for pack
    _p0: u32,
}

@group(0) @binding(0) var<uniform> rp: Real;
@group(0) @binding(1) var<storage, read> src: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> tw: array<vec2<f32>>;

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn conj(a: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x, -a.y);
}

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 64u + lid;
}

// Forward: Z (batch * n, from the complex FFT) -> X (batch * stride, bins 0..=n).
// X[k] = Fe + W^k Fo with Fe = (Z[k] + conj Z[n-k]) / 2, Fo = (Z[k] - conj Z[n-k]) / 2i.
@compute @workgroup_size(64)
fn real_unpack(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = thread_index(wid, nwg, lid);
    if (t >= rp.total) {
        return;
    }
    let n = rp.n;
    let b = t / (n + 1u);
    let k = t - b * (n + 1u);
    let zk = src[b * n + (k % n)];
    let zc = conj(src[b * n + ((n - k) % n)]);
    let fe = 0.5 * (zk + zc);
    let d = zk - zc;
    let fo = 0.5 * vec2<f32>(d.y, -d.x);
    dst[b * rp.stride + k] = fe + cmul(tw[k], fo);
}

// Inverse: X (batch * stride) -> Z (batch * n) so that an unnormalised inverse n-point
// FFT of Z gives M * x (the scale of an unnormalised inverse real FFT).
// Z[k] = Fe + I*Fo with Fe = X[k] + conj X[n-k], Fo = (X[k] - conj X[n-k]) * conj W^k.
@compute @workgroup_size(64)
fn real_pack(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = thread_index(wid, nwg, lid);
    if (t >= rp.total) {
        return;
    }
    let n = rp.n;
    let b = t / n;
    let k = t - b * n;
    let xk = src[b * rp.stride + k];
    let xc = conj(src[b * rp.stride + n - k]);
    let fe = xk + xc;
    let fo = cmul(xk - xc, conj(tw[k]));
    dst[b * n + k] = fe + vec2<f32>(-fo.y, fo.x);
}
