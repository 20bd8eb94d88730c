// Spectral multiply-accumulate over partitions (uniformly partitioned convolution).
//
// One dispatch handles one chunk of partitions of one filter set: for every bin k,
//   yL = sum_j xL(j) * h(j) ...   (mode 1: one IR for both channels;
//                                  mode 2: L*h0, R*h1;
//                                  mode 4: true stereo LL, LR, RL, RR)
// The frequency-domain delay line of each input channel is a doubled ring of `ring`
// spectra (each written at p and p + ring), so partition jj of the chunk reads the
// contiguous position p + ring - jj. h holds `count` partitions x `nch` channels.

struct Mac {
    stride: u32,   // elements per spectrum
    bins: u32,     // bins used (n + 1)
    count: u32,    // partitions in this chunk
    nch: u32,      // IR channels in h: 1, 2 or 4
    ring: u32,     // ring length of x0/x1
    pos: u32,      // ring position holding the newest spectrum of this chunk
    accumulate: u32,
    out_l: u32,    // element offset of the left output spectrum in acc
    out_r: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> mp: Mac;
@group(0) @binding(1) var<storage, read> h: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> x0: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> x1: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> acc: array<vec2<f32>>;

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

@compute @workgroup_size(64)
fn mac(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (k >= mp.bins) {
        return;
    }
    var yl = vec2<f32>(0.0, 0.0);
    var yr = vec2<f32>(0.0, 0.0);
    for (var jj = 0u; jj < mp.count; jj = jj + 1u) {
        let xi = (mp.pos + mp.ring - jj) * mp.stride + k;
        let xl = x0[xi];
        let xr = x1[xi];
        let hb = jj * mp.nch * mp.stride + k;
        if (mp.nch == 1u) {
            let h0 = h[hb];
            yl = yl + cmul(xl, h0);
            yr = yr + cmul(xr, h0);
        } else if (mp.nch == 2u) {
            yl = yl + cmul(xl, h[hb]);
            yr = yr + cmul(xr, h[hb + mp.stride]);
        } else {
            yl = yl + cmul(xl, h[hb]) + cmul(xr, h[hb + 2u * mp.stride]);
            yr = yr + cmul(xl, h[hb + mp.stride]) + cmul(xr, h[hb + 3u * mp.stride]);
        }
    }
    if (mp.accumulate == 1u) {
        yl = yl + acc[mp.out_l + k];
        yr = yr + acc[mp.out_r + k];
    }
    acc[mp.out_l + k] = yl;
    acc[mp.out_r + k] = yr;
}
