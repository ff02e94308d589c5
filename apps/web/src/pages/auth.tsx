import { useMutation } from '@tanstack/react-query';
import { type FormEvent, type ReactNode, useState } from 'react';
import { Link, Navigate, useLocation, useNavigate, useSearchParams } from 'react-router';
import { errorMessage } from '../errors';
import { useSession } from '../hooks';
import { takeSessionEndedMessage } from '../session';
import { useTRPC } from '../trpc';

function AuthCard(props: { title: string; children: ReactNode }) {
  return (
    <main className="auth">
      <div className="card">
        <h1>{props.title}</h1>
        {props.children}
      </div>
    </main>
  );
}

export function Field(props: {
  label: string;
  name: string;
  type?: string;
  autoComplete?: string;
  value: string;
  onChange: (v: string) => void;
  minLength?: number;
}) {
  return (
    <label className="field">
      <span>{props.label}</span>
      <input
        name={props.name}
        type={props.type ?? 'text'}
        autoComplete={props.autoComplete}
        required
        minLength={props.minLength}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
      />
    </label>
  );
}

export function ErrorText({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p role="alert" className="error">
      {errorMessage(error)}
    </p>
  );
}

/** After sign-in, back to the page that sent the user here. */
function useReturnTo(): string {
  const location = useLocation();
  const from = (location.state as { from?: string } | null)?.from;
  return from && from !== '/sign-in' ? from : '/projects';
}

export function SignInPage() {
  const trpc = useTRPC();
  const session = useSession();
  const returnTo = useReturnTo();
  const [notice] = useState(takeSessionEndedMessage);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const login = useMutation(trpc.auth.login.mutationOptions());
  if (session) return <Navigate to={returnTo} replace />;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    login.mutate({ email, password });
  };
  return (
    <AuthCard title="Sign in">
      {notice && (
        <p role="status" className="notice">
          {notice}
        </p>
      )}
      <form onSubmit={submit}>
        <Field
          label="Email"
          name="email"
          type="email"
          autoComplete="email"
          value={email}
          onChange={setEmail}
        />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={setPassword}
        />
        <ErrorText error={login.error} />
        <button type="submit" disabled={login.isPending}>
          Sign in
        </button>
      </form>
      <p>
        <Link to="/register">Create an account</Link> ·{' '}
        <Link to="/forgot-password">Forgot password?</Link>
      </p>
    </AuthCard>
  );
}

export function RegisterPage() {
  const trpc = useTRPC();
  const session = useSession();
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const register = useMutation(trpc.auth.register.mutationOptions());
  if (session) return <Navigate to="/projects" replace />;
  return (
    <AuthCard title="Create an account">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          register.mutate({ name, email, password });
        }}
      >
        <Field label="Name" name="name" autoComplete="name" value={name} onChange={setName} />
        <Field
          label="Email"
          name="email"
          type="email"
          autoComplete="email"
          value={email}
          onChange={setEmail}
        />
        <Field
          label="Password (at least 8 characters)"
          name="password"
          type="password"
          autoComplete="new-password"
          minLength={8}
          value={password}
          onChange={setPassword}
        />
        <ErrorText error={register.error} />
        <button type="submit" disabled={register.isPending}>
          Create account
        </button>
      </form>
      <p>
        Have an account? <Link to="/sign-in">Sign in</Link>
      </p>
    </AuthCard>
  );
}

export function ForgotPasswordPage() {
  const trpc = useTRPC();
  const [email, setEmail] = useState('');
  const request = useMutation(trpc.auth.requestPasswordReset.mutationOptions());
  return (
    <AuthCard title="Reset your password">
      {request.isSuccess ? (
        <p role="status">If an account exists for {email}, a reset link is on its way.</p>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            request.mutate({ email });
          }}
        >
          <Field
            label="Email"
            name="email"
            type="email"
            autoComplete="email"
            value={email}
            onChange={setEmail}
          />
          <ErrorText error={request.error} />
          <button type="submit" disabled={request.isPending}>
            Send reset link
          </button>
        </form>
      )}
      <p>
        <Link to="/sign-in">Back to sign in</Link>
      </p>
    </AuthCard>
  );
}

export function ResetPasswordPage() {
  const trpc = useTRPC();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const [password, setPassword] = useState('');
  const reset = useMutation(trpc.auth.resetPassword.mutationOptions());
  if (!token) {
    return (
      <AuthCard title="Choose a new password">
        <p role="alert" className="error">
          This link has no reset token. Ask for a new link.
        </p>
        <Link to="/forgot-password">Ask for a new link</Link>
      </AuthCard>
    );
  }
  return (
    <AuthCard title="Choose a new password">
      {reset.isSuccess ? (
        <>
          <p role="status">Your password was changed.</p>
          <button type="button" onClick={() => navigate('/sign-in')}>
            Sign in
          </button>
        </>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            reset.mutate({ token, newPassword: password });
          }}
        >
          <Field
            label="New password"
            name="newPassword"
            type="password"
            autoComplete="new-password"
            minLength={8}
            value={password}
            onChange={setPassword}
          />
          <ErrorText error={reset.error} />
          <button type="submit" disabled={reset.isPending}>
            Set password
          </button>
        </form>
      )}
    </AuthCard>
  );
}
